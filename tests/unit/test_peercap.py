"""The cap on unproven network peers: its accounting, and which fds it may shut down."""

from __future__ import annotations

import socket

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from actors.peercap import UnprovenPeers, bound_address, shut_down_connection


def test_connections_over_the_cap_are_refused_and_not_counted() -> None:
    peers = UnprovenPeers(cap=2, window=5.0)
    assert peers.admit(10, now=0.0) and peers.admit(11, now=1.0)
    assert not peers.admit(12, now=2.0)
    assert len(peers) == 2
    peers.closed(12)  # the refused one closing changes nothing
    assert len(peers) == 2


def test_a_closed_connection_frees_its_place() -> None:
    peers = UnprovenPeers(cap=2, window=5.0)
    assert peers.admit(10, now=0.0) and peers.admit(11, now=0.0)
    peers.closed(10)
    assert peers.admit(12, now=0.1)
    assert not peers.admit(13, now=0.2)


def test_a_connection_open_longer_than_the_handshake_may_take_has_passed_it() -> None:
    peers = UnprovenPeers(cap=2, window=5.0)
    assert peers.admit(10, now=0.0) and peers.admit(11, now=3.0)
    assert not peers.admit(12, now=4.9)
    assert peers.admit(12, now=5.0)  # 10 is 5 s old: proven, no longer counted
    assert not peers.admit(13, now=7.9)
    assert peers.admit(13, now=8.0)  # and now 11
    assert len(peers) == 2


def test_a_number_accepted_again_is_a_new_connection() -> None:
    """An accept of a number still counted: its old connection closed unseen; it counts once,
    from the new accept."""
    peers = UnprovenPeers(cap=2, window=5.0)
    assert peers.admit(10, now=0.0) and peers.admit(10, now=4.0)
    assert len(peers) == 1
    assert peers.admit(11, now=6.0)  # the 10 of time 0 would have expired; the one of time 4 has not
    assert len(peers) == 2


@pytest.mark.parametrize(("endpoint", "address"), [
    ("tcp://127.0.0.1:5555", ("127.0.0.1", 5555)),
    ("tcp://0.0.0.0:80", ("0.0.0.0", 80)),
    ("tcp://[::1]:9000", ("::1", 9000)),
])
def test_the_bound_address_is_read_from_the_last_endpoint(endpoint: str, address: tuple[str, int]) -> None:
    assert bound_address(endpoint) == address


def test_only_a_connection_accepted_on_the_address_is_shut_down() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_server(("127.0.0.1", 0)) as other:
        port = listener.getsockname()[1]
        unix, unix_peer = socket.socketpair()
        with socket.create_connection(("127.0.0.1", port)) as client, unix, unix_peer:
            accepted, _ = listener.accept()
            with accepted, socket.create_connection(other.getsockname()) as elsewhere:
                stranger, _ = other.accept()
                with stranger:
                    assert not shut_down_connection(listener.fileno(), "127.0.0.1", port), "the listener itself"
                    assert not shut_down_connection(stranger.fileno(), "127.0.0.1", port), "another port"
                    assert not shut_down_connection(unix.fileno(), "127.0.0.1", port), "not TCP"
                    assert not shut_down_connection(accepted.fileno(), "127.0.0.2", port), "another address"
                    client.settimeout(5)
                    elsewhere.sendall(b"x")
                    assert stranger.recv(1) == b"x"
                    assert shut_down_connection(accepted.fileno(), "0.0.0.0", port)
                    assert client.recv(1) == b"", "the client sees the end of the stream"
                    assert accepted.fileno() >= 0, "the connection's own fd stays its owner's to close"
                    unix.sendall(b"y")
                    assert unix_peer.recv(1) == b"y"


def test_a_closed_number_is_not_shut_down() -> None:
    probe = socket.socket()
    number = probe.fileno()
    probe.close()
    assert not shut_down_connection(number, "0.0.0.0", 1)


def test_a_connection_past_its_curve_handshake_is_left_alone() -> None:
    """However late the bus sees its accept: a client that proved its key may have a request in flight."""
    context = zmq.Context()
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    router = context.socket(zmq.ROUTER)
    router.curve_server = True
    router.curve_secretkey = server_secret
    accepts = router.get_monitor_socket(zmq.EVENT_ACCEPTED)
    router.bind("tcp://127.0.0.1:*")
    host, port = bound_address(router.getsockopt_string(zmq.LAST_ENDPOINT))
    client = context.socket(zmq.DEALER)
    client.curve_serverkey, client.curve_publickey, client.curve_secretkey = server_public, client_public, client_secret
    try:
        client.connect(f"tcp://{host}:{port}")
        assert accepts.poll(5000)
        proven = recv_monitor_message(accepts)["value"]
        client.send(b"request")
        assert router.poll(5000) and router.recv_multipart()[1] == b"request"
        assert not shut_down_connection(proven, host, port)
        with socket.create_connection((host, port)) as raw:
            assert accepts.poll(5000)
            unproven = recv_monitor_message(accepts)["value"]
            assert shut_down_connection(unproven, host, port)
            raw.settimeout(5)
            while raw.recv(64):  # at most the greeting, then the end of the stream (a timeout fails)
                pass
        client.send(b"still served")
        assert router.poll(5000) and router.recv_multipart()[1] == b"still served"
    finally:
        router.disable_monitor()
        for sock in (accepts, client, router):
            sock.close(linger=0)
        context.term()
