"""The inbox of an actor that owns sockets: its mailbox and its sockets both wake it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import zmq
from pykka._envelope import Envelope

from actors.pollinbox import PollingInbox, Readable


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind("inproc://inbox-test")
    push = context.socket(zmq.PUSH)
    push.connect("inproc://inbox-test")
    yield push, pull
    push.close(linger=0)
    pull.close(linger=0)
    context.term()


def test_a_message_put_by_another_thread_wakes_a_waiting_get() -> None:
    inbox = PollingInbox()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(inbox.get().message))
    waiter.start()
    inbox.put(Envelope("hello"))
    waiter.join(timeout=30)
    assert got == ["hello"]
    assert inbox.empty()


def test_a_readable_socket_is_handed_over_as_its_handler(pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    push, pull = pair
    inbox = PollingInbox()
    drained: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                drained.append(pull.recv(zmq.NOBLOCK))
            except zmq.Again:
                return

    inbox.watch(pull, drain)
    push.send(b"report")
    message = inbox.get().message
    assert isinstance(message, Readable)
    message.handler()
    assert drained == [b"report"]


def test_what_waits_on_a_socket_goes_before_the_mailbox(pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    """A message sent on an actor's socket before another thread put a message that it
    caused is handled first: the inbox reads its sources before its mailbox."""
    push, pull = pair
    inbox = PollingInbox()
    handled: list[object] = []

    def drain() -> None:
        while True:
            try:
                handled.append(pull.recv(zmq.NOBLOCK))
            except zmq.Again:
                return

    inbox.watch(pull, drain)
    push.send(b"state change")
    inbox.put(Envelope("request"))
    for _ in range(2):
        message = inbox.get().message
        if isinstance(message, Readable):
            message.handler()
        else:
            handled.append(message)
    assert handled == [b"state change", "request"]
    assert inbox.empty()


def test_an_unwatched_source_no_longer_wakes_the_inbox() -> None:
    inbox = PollingInbox()
    read_end, write_end = os.pipe()
    try:
        inbox.watch(read_end, lambda: None)
        inbox.unwatch(read_end)
        os.write(write_end, b"x")
        inbox.put(Envelope("only this"))
        assert inbox.get().message == "only this"
        assert inbox.empty()
    finally:
        os.close(read_end)
        os.close(write_end)
