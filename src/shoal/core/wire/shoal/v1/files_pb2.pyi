from shoal.core.wire.shoal.v1 import agent_pb2 as _agent_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CopyHeader(_message.Message):
    __slots__ = ("tree", "connect_timeout", "transfer_id", "dest", "name", "kind", "size", "mode", "mtime_ns", "uid", "gid", "preserve", "chunk_size", "stall_timeout", "signed", "mirror", "bulk")
    TREE_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    DEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    PRESERVE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    STALL_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    MIRROR_FIELD_NUMBER: _ClassVar[int]
    BULK_FIELD_NUMBER: _ClassVar[int]
    tree: _agent_pb2.Subtree
    connect_timeout: float
    transfer_id: str
    dest: str
    name: str
    kind: str
    size: int
    mode: int
    mtime_ns: int
    uid: int
    gid: int
    preserve: bool
    chunk_size: int
    stall_timeout: float
    signed: _agent_pb2.Signed
    mirror: bool
    bulk: str
    def __init__(self, tree: _Optional[_Union[_agent_pb2.Subtree, _Mapping]] = ..., connect_timeout: _Optional[float] = ..., transfer_id: _Optional[str] = ..., dest: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., size: _Optional[int] = ..., mode: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., preserve: _Optional[bool] = ..., chunk_size: _Optional[int] = ..., stall_timeout: _Optional[float] = ..., signed: _Optional[_Union[_agent_pb2.Signed, _Mapping]] = ..., mirror: _Optional[bool] = ..., bulk: _Optional[str] = ...) -> None: ...

class CopyChunk(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class CopyEnd(_message.Message):
    __slots__ = ("xxh3_128", "size")
    XXH3_128_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    xxh3_128: str
    size: int
    def __init__(self, xxh3_128: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class CopyAbort(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class CopyMessage(_message.Message):
    __slots__ = ("header", "chunk", "end", "abort")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    header: CopyHeader
    chunk: CopyChunk
    end: CopyEnd
    abort: CopyAbort
    def __init__(self, header: _Optional[_Union[CopyHeader, _Mapping]] = ..., chunk: _Optional[_Union[CopyChunk, _Mapping]] = ..., end: _Optional[_Union[CopyEnd, _Mapping]] = ..., abort: _Optional[_Union[CopyAbort, _Mapping]] = ...) -> None: ...

class BulkOffer(_message.Message):
    __slots__ = ("port", "token", "key")
    PORT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    port: int
    token: bytes
    key: bytes
    def __init__(self, port: _Optional[int] = ..., token: _Optional[bytes] = ..., key: _Optional[bytes] = ...) -> None: ...

class CopyEvent(_message.Message):
    __slots__ = ("resume_offset", "event", "bulk")
    RESUME_OFFSET_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    BULK_FIELD_NUMBER: _ClassVar[int]
    resume_offset: int
    event: _agent_pb2.TaskEvent
    bulk: BulkOffer
    def __init__(self, resume_offset: _Optional[int] = ..., event: _Optional[_Union[_agent_pb2.TaskEvent, _Mapping]] = ..., bulk: _Optional[_Union[BulkOffer, _Mapping]] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("path", "recursive", "chunk_size", "signed")
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    path: str
    recursive: bool
    chunk_size: int
    signed: _agent_pb2.Signed
    def __init__(self, path: _Optional[str] = ..., recursive: _Optional[bool] = ..., chunk_size: _Optional[int] = ..., signed: _Optional[_Union[_agent_pb2.Signed, _Mapping]] = ...) -> None: ...

class FetchChunk(_message.Message):
    __slots__ = ("header", "data", "end", "error")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    header: CopyHeader
    data: bytes
    end: CopyEnd
    error: _agent_pb2.Result
    def __init__(self, header: _Optional[_Union[CopyHeader, _Mapping]] = ..., data: _Optional[bytes] = ..., end: _Optional[_Union[CopyEnd, _Mapping]] = ..., error: _Optional[_Union[_agent_pb2.Result, _Mapping]] = ...) -> None: ...
