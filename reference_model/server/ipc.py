"""What the server's processes share when front-end workers serve HTTP (``--frontend-workers``):

- ``Channel``: messages (pickled tuples) both ways over a Unix stream socket, read and written
  by an asyncio loop without blocking it; what one loop turn sends goes out in one write, and a
  peer that stops reading is dropped once ``MAX_UNSENT`` bytes wait for it, as is one that
  sends a message over ``MAX_MESSAGE`` bytes;
- ``send_connection``/``receive_connections``: accepted TCP connections handed to a worker over
  a Unix datagram socket (``SCM_RIGHTS``), each with its index in the connection table;
- ``SharedRegion``: an anonymous shared memory file (``memfd``), mapped by the model process
  and by the workers it passes the descriptor to; the kernel frees it when the last process
  holding it ends, so nothing is left behind, even after ``SIGKILL``;
- ``Slots``: a worker's part of the image region, fixed-size slots taken and given back by the
  worker alone (the model process copies an image out of its slot when the message naming it
  arrives, before any later message of that worker is read);
- connection states, one byte per connection in another region: what the model process reads
  when a worker dies, to answer 503 on the connections whose request was left unanswered.

Messages are pickles. The model process reads a worker's with ``plain_loads``, which builds
plain data only (numbers, strings, bytes, tuples, lists, dicts) and refuses anything that would
import or call code: a worker parses untrusted bodies and images, and whatever happens there does
not reach the model process through its channel."""

from __future__ import annotations

import array
import asyncio
import io
import logging
import mmap
import os
import pickle
import socket
import struct
from typing import Any, Callable

from PIL import Image

__all__ = [
    "Channel",
    "SharedRegion",
    "Slots",
    "send_connection",
    "receive_connections",
    "read_message",
    "write_message",
    "image_into",
    "image_from",
    "plain_loads",
    "CONN_IDLE",
    "CONN_REQUEST",
    "CONN_RESPONDING",
    "MAX_UNSENT",
    "MAX_MESSAGE",
    "MAX_INLINE",
]

_LENGTH = struct.Struct("<I")
_SLOT = struct.Struct("<I")
MAX_UNSENT = 256 * 1024 * 1024  # bytes waiting for a peer that does not read: it is dropped
MAX_MESSAGE = 256 * 1024 * 1024  # a longer message drops the peer that sends it
MAX_INLINE = 64 * 1024 * 1024  # the pixels one caption message may carry in itself
_READ_SIZE = 1 << 20

# A connection's state, one byte in the shared connection table, written by its worker.
CONN_IDLE = 0  # no request in progress (between requests of a keep-alive connection)
CONN_REQUEST = 1  # a request is in progress and no byte of its answer has been sent
CONN_RESPONDING = 2  # its answer has started


log = logging.getLogger("reference_model.server.ipc")


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a message may hold plain data only, not {module}.{name}")


def plain_loads(data: bytes) -> Any:
    """A pickled message of plain data; ``pickle.UnpicklingError`` for anything else."""
    return _PlainUnpickler(io.BytesIO(data)).load()


def _pack(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def write_message(sock: socket.socket, message: Any) -> None:
    """Send one message on a blocking socket (before a loop runs: the greeting)."""
    sock.sendall(_pack(message))


def read_message(sock: socket.socket) -> Any:
    """Receive one message from a blocking socket; ``EOFError`` when the peer is gone."""

    def exactly(n: int) -> bytes:
        parts, left = [], n
        while left:
            chunk = sock.recv(left)
            if not chunk:
                raise EOFError("peer closed the channel")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    (size,) = _LENGTH.unpack(exactly(_LENGTH.size))
    return pickle.loads(exactly(size))


class Channel:
    """One end of a message channel on ``loop``: ``on_message(message)`` for each message that
    arrives, ``on_close()`` once when the peer is gone (or was dropped); ``send`` never blocks."""

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[Any], None],
        on_close: Callable[[], None],
        *,
        loads: Callable[[bytes], Any] = pickle.loads,
    ):
        self.sock, self.loop = sock, loop
        self.on_message, self.on_close, self.loads = on_message, on_close, loads
        sock.setblocking(False)
        self._in = bytearray()
        self._out = bytearray()
        self._flush_scheduled = False
        self._writing = False
        self.closed = False
        loop.add_reader(sock.fileno(), self._readable)

    def send(self, message: Any) -> None:
        if self.closed:
            return
        self._out += _pack(message)
        if len(self._out) > MAX_UNSENT:  # the peer stopped reading: it is wedged or gone
            self.close()
            return
        if not self._flush_scheduled and not self._writing:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.closed or not self._out:
            return
        try:
            sent = self.sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        del self._out[:sent]
        if self._out and not self._writing:
            self._writing = True
            self.loop.add_writer(self.sock.fileno(), self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self._out[:sent]
        if not self._out:
            self._writing = False
            self.loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        try:
            data = self.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        buf = self._in
        buf += data
        bodies, start, end = [], 0, len(buf)
        while end - start >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buf, start)
            if size > MAX_MESSAGE:
                log.error(f"dropping a channel: a message of {size} bytes, over {MAX_MESSAGE}")
                self.close()
                return
            if end - start - _LENGTH.size < size:
                break
            bodies.append(bytes(buf[start + _LENGTH.size : start + _LENGTH.size + size]))
            start += _LENGTH.size + size
        del buf[:start]
        for body in bodies:
            try:
                message = self.loads(body)
            except Exception as exc:  # a peer that sends what it must not is dropped
                log.error(f"dropping a channel: unreadable message ({type(exc).__name__}: {exc})")
                self.close()
                return
            try:
                self.on_message(message)
            except Exception:  # one message's failure is logged; the channel goes on
                log.exception("a channel message failed")
            if self.closed:
                return

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        fd = self.sock.fileno()
        if fd >= 0:
            self.loop.remove_reader(fd)
            if self._writing:
                self.loop.remove_writer(fd)
        self.sock.close()
        self.on_close()


def send_connection(sock: socket.socket, index: int, conn: socket.socket) -> bool:
    """Hand ``conn`` (with its table ``index``) over ``sock`` (a non-blocking ``SOCK_SEQPACKET``
    socket); False when the peer cannot take it now."""
    try:
        socket.send_fds(sock, [_SLOT.pack(index)], [conn.fileno()])
    except OSError:  # full (the worker is not reading) or gone
        return False
    return True


def receive_connections(sock: socket.socket) -> list[tuple[int, socket.socket]]:
    """The connections waiting on ``sock`` (non-blocking), as (table index, socket); an empty
    list when none wait. ``EOFError`` when the peer is gone."""
    out = []
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _SLOT.size, 1)
        except (BlockingIOError, InterruptedError):
            return out
        if not data and not fds:
            raise EOFError("peer closed the connection channel")
        if len(data) != _SLOT.size or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        out.append((_SLOT.unpack(data)[0], socket.socket(fileno=fds[0])))


class SharedRegion:
    """``size`` bytes of anonymous shared memory: ``SharedRegion.create(size)`` in the model
    process, ``SharedRegion.attach(fd, size)`` in a worker given the descriptor."""

    def __init__(self, fd: int, size: int):
        self.fd, self.size = fd, size
        self.map = mmap.mmap(fd, size)
        self.view = memoryview(self.map)

    @classmethod
    def create(cls, name: str, size: int) -> "SharedRegion":
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(fd, max(1, size))
        return cls(fd, max(1, size))

    @classmethod
    def attach(cls, fd: int, size: int) -> "SharedRegion":
        return cls(fd, size)

    def close(self) -> None:
        try:
            self.view.release()
            self.map.close()
        except BufferError:  # a view is still held somewhere; the mapping goes with the process
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass


class Slots:
    """Slots ``first`` .. ``first + count - 1`` of ``slot_bytes`` each in ``region``, taken and
    given back by one worker; the last given back is taken first, so a quiet server touches
    few of its pages."""

    def __init__(self, region: SharedRegion, first: int, count: int, slot_bytes: int):
        self.region, self.first, self.count, self.slot_bytes = region, first, count, slot_bytes
        self._free = array.array("I", range(first + count - 1, first - 1, -1))

    @property
    def free(self) -> int:
        return len(self._free)

    def take(self, n: int) -> list[int] | None:
        """``n`` slots, or None when fewer are free (then none is taken)."""
        if n > len(self._free):
            return None
        return [self._free.pop() for _ in range(n)]

    def give_back(self, slots: list[int]) -> None:
        self._free.extend(slots)


def image_into(region: SharedRegion, slot: int, slot_bytes: int, image: Image.Image) -> tuple:
    """Write the RGB ``image`` into ``slot``; the item a message carries: ``(slot, width, height)``,
    or ``(-1, width, height, pixels)`` for an image larger than a slot (sent in the message)."""
    data = image.tobytes()
    w, h = image.size
    if len(data) > slot_bytes:
        return (-1, w, h, data)
    start = slot * slot_bytes
    region.view[start : start + len(data)] = data
    return (slot, w, h)


def image_from(region: SharedRegion, slot_bytes: int, item: tuple) -> Image.Image:
    """The image an item names, copied out of its slot (the slot may be reused at once)."""
    slot, w, h = item[0], item[1], item[2]
    if slot < 0:
        return Image.frombytes("RGB", (w, h), item[3])
    start = slot * slot_bytes
    return Image.frombytes("RGB", (w, h), region.view[start : start + 3 * w * h])
