"""The parts a server with front-end workers shares between its processes: the message channel,
the connection hand-over, the shared image slots, the image preparation done without the model,
and the null model."""

from __future__ import annotations

import asyncio
import os
import pickle
import random
import socket

import pytest
from PIL import Image

from reference_model.caption import Captioner, Preparation
from reference_model.null import NULL_CAPTION, NullCaptioner
from reference_model.server.frontend import slot_plan
from reference_model.server.ipc import (
    Channel,
    SharedRegion,
    Slots,
    image_from,
    image_into,
    read_message,
    receive_connections,
    send_connection,
    write_message,
)
from reference_model.server.settings import ServerSettings


def _noise(w: int, h: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", (w, h), rng.randbytes(3 * w * h))


def test_channel_carries_messages_both_ways_in_order_whatever_their_size():
    async def scenario() -> tuple[list, list, bool]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        got_a: list = []
        got_b: list = []
        closed = asyncio.Event()
        end_a = Channel(a, loop, got_a.append, lambda: None)
        end_b = Channel(b, loop, got_b.append, closed.set)
        sent = [("small", i) for i in range(50)] + [("big", bytes(3 * 1024 * 1024))] + [("after", 1)]
        for m in sent:
            end_a.send(m)
        end_b.send(("back", [1.5, None, "x"]))
        for _ in range(400):  # bounded: 4 s at most
            if len(got_b) == len(sent) and got_a:
                break
            await asyncio.sleep(0.01)
        end_a.close()
        await asyncio.wait_for(closed.wait(), 5)
        return got_a, got_b, end_b.closed

    got_a, got_b, closed = asyncio.run(scenario())
    assert got_a == [("back", [1.5, None, "x"])]
    assert got_b[:50] == [("small", i) for i in range(50)] and got_b[50][1] == bytes(3 * 1024 * 1024)
    assert got_b[-1] == ("after", 1) and closed


def test_blocking_greeting_and_eof():
    a, b = socket.socketpair()
    write_message(a, {"index": 3})
    assert read_message(b) == {"index": 3}
    a.close()
    with pytest.raises(EOFError):
        read_message(b)


def test_connections_are_handed_over_with_their_index():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.setblocking(False)
    assert receive_connections(theirs) == []
    left, right = socket.socketpair()
    assert send_connection(ours, 7, left)
    ((index, got),) = receive_connections(theirs)
    assert index == 7
    left.close()  # the copy handed over still reaches the peer
    got.sendall(b"ping")
    assert right.recv(4) == b"ping"
    got.close()
    ours.close()
    with pytest.raises(EOFError):
        receive_connections(theirs)


def test_slots_are_taken_whole_or_not_at_all_and_reused_last_first():
    region = SharedRegion.create("test-slots", 4 * 12)
    try:
        slots = Slots(region, first=2, count=2, slot_bytes=12)
        assert slots.take(3) is None and slots.free == 2
        taken = slots.take(2)
        assert sorted(taken) == [2, 3] and slots.take(1) is None
        slots.give_back([3])
        assert slots.take(1) == [3]
    finally:
        region.close()


def test_images_go_through_their_slot_or_inline_when_larger():
    region = SharedRegion.create("test-images", 2 * 3 * 64 * 64)
    try:
        small, large = _noise(64, 64, 1), _noise(70, 64, 2)
        item = image_into(region, 1, 3 * 64 * 64, small)
        assert item == (1, 64, 64)
        assert image_from(region, 3 * 64 * 64, item).tobytes() == small.tobytes()
        inline = image_into(region, 0, 3 * 64 * 64, large)
        assert inline[0] == -1 and image_from(region, 3 * 64 * 64, inline).tobytes() == large.tobytes()
        other = SharedRegion.attach(region.fd, region.size)  # another mapping of the same memory
        assert image_from(other, 3 * 64 * 64, item).tobytes() == small.tobytes()
        other.view.release()
        other.map.close()
    finally:
        region.close()


def test_preparation_does_what_prepare_does():
    images = [_noise(200, 120, 3), _noise(64, 64, 4), _noise(3000, 40, 5).convert("L"), _noise(900, 1400, 6)]

    class Plain(Captioner):
        input_side = 100

        def caption(self, images):  # pragma: no cover - not called
            return []

    plain = Plain()
    assert plain.preparation() == Preparation(200)
    for im in images:
        assert plain.preparation()(im).tobytes() == plain.prepare(im).tobytes()
        prepared = NullCaptioner().preparation()(im)
        assert prepared.size == (64, 64) and prepared.mode == "RGB"

    class Own(Plain):
        def prepare(self, image):
            return image

    assert Own().preparation() is None  # its own prepare: no worker can do it


def test_tiny_preparation_is_its_fit():
    pytest.importorskip("torch")
    from reference_model.preprocess import fit

    prep = Preparation(64, square=True)
    for im in (_noise(200, 120, 7), _noise(64, 64, 8), _noise(31, 90, 9).convert("L")):
        assert prep(im).tobytes() == fit(im).tobytes()


def test_null_model_answers_the_same_caption_for_each_image():
    caps = NullCaptioner().caption([_noise(8, 8, 1), _noise(9, 9, 2)])
    assert [c.text for c in caps] == [NULL_CAPTION, NULL_CAPTION]
    assert all(c.confidence == 1.0 and "".join(t for t, _ in c.token_logprobs) == NULL_CAPTION for c in caps)
    assert NullCaptioner().caption([]) == []


def test_slot_plan_lets_a_worker_hold_the_whole_queue_and_a_batch():
    settings = ServerSettings(max_queue=256, max_batch=32, frontend_workers=3)
    assert slot_plan(settings, Preparation(64, square=True)) == (256 + 32, 3 * 64 * 64)
    assert slot_plan(ServerSettings(frontend_workers=1), Preparation(768))[1] == 3 * 1024 * 1024


def test_a_workers_messages_are_read_as_plain_data_only():
    from reference_model.server.ipc import plain_loads

    message = ("cap", 3, [(1, 64, 64), (-1, 2, 1, b"\x00" * 6)], 12.5, {"k": [None, True]})
    assert plain_loads(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)) == message
    for hostile in (ServerSettings(), Preparation(64), os.system):
        with pytest.raises(pickle.UnpicklingError):
            plain_loads(pickle.dumps(hostile))

    async def scenario() -> tuple[list, bool]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        got: list = []
        closed = asyncio.Event()
        Channel(b, loop, got.append, closed.set, loads=plain_loads)
        sender = Channel(a, loop, lambda m: None, lambda: None)
        sender.send(("ok", 1))
        sender.send(("bad", Preparation(64)))  # a class: the channel is dropped
        await asyncio.wait_for(closed.wait(), 5)
        sender.close()
        return got, closed.is_set()

    assert asyncio.run(scenario()) == ([("ok", 1)], True)
