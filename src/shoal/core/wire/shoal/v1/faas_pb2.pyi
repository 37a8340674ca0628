from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FunctionConfig(_message.Message):
    __slots__ = ("timeout_in_ms", "memory_in_bytes", "handler")
    TIMEOUT_IN_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    timeout_in_ms: int
    memory_in_bytes: int
    handler: str
    def __init__(self, timeout_in_ms: _Optional[int] = ..., memory_in_bytes: _Optional[int] = ..., handler: _Optional[str] = ...) -> None: ...

class AcquireContainerRequest(_message.Message):
    __slots__ = ("request_id", "account_id", "function_name", "function_config")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    account_id: str
    function_name: str
    function_config: FunctionConfig
    def __init__(self, request_id: _Optional[str] = ..., account_id: _Optional[str] = ..., function_name: _Optional[str] = ..., function_config: _Optional[_Union[FunctionConfig, _Mapping]] = ...) -> None: ...

class AcquireContainerReply(_message.Message):
    __slots__ = ("node_id", "node_address", "node_service_port", "container_id", "cold")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_SERVICE_PORT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    COLD_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_address: str
    node_service_port: int
    container_id: str
    cold: bool
    def __init__(self, node_id: _Optional[str] = ..., node_address: _Optional[str] = ..., node_service_port: _Optional[int] = ..., container_id: _Optional[str] = ..., cold: _Optional[bool] = ...) -> None: ...

class ReturnContainerRequest(_message.Message):
    __slots__ = ("request_id", "container_id", "duration_in_nanos", "max_memory_usage_in_bytes", "error_code", "error_message")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_IN_NANOS_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_USAGE_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    container_id: str
    duration_in_nanos: int
    max_memory_usage_in_bytes: int
    error_code: str
    error_message: str
    def __init__(self, request_id: _Optional[str] = ..., container_id: _Optional[str] = ..., duration_in_nanos: _Optional[int] = ..., max_memory_usage_in_bytes: _Optional[int] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class ReturnContainerReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeDesc(_message.Message):
    __slots__ = ("id", "address", "node_service_port", "memory_in_bytes", "reserved_time_timestamp_ms", "released_time_timestamp_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_SERVICE_PORT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESERVED_TIME_TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_TIME_TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    node_service_port: int
    memory_in_bytes: int
    reserved_time_timestamp_ms: int
    released_time_timestamp_ms: int
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., node_service_port: _Optional[int] = ..., memory_in_bytes: _Optional[int] = ..., reserved_time_timestamp_ms: _Optional[int] = ..., released_time_timestamp_ms: _Optional[int] = ...) -> None: ...

class ReserveNodeRequest(_message.Message):
    __slots__ = ("request_id", "account_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    account_id: str
    def __init__(self, request_id: _Optional[str] = ..., account_id: _Optional[str] = ...) -> None: ...

class ReserveNodeReply(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: NodeDesc
    def __init__(self, node: _Optional[_Union[NodeDesc, _Mapping]] = ...) -> None: ...

class ReleaseNodeRequest(_message.Message):
    __slots__ = ("request_id", "id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    id: str
    def __init__(self, request_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ReleaseNodeReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNodesUsageRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetNodesUsageReply(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeDesc]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeDesc, _Mapping]]] = ...) -> None: ...

class FunctionMeta(_message.Message):
    __slots__ = ("function_name", "handler", "timeout_in_ms", "memory_in_bytes", "code_dir", "cpu_quota", "concurrency")
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_IN_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    CODE_DIR_FIELD_NUMBER: _ClassVar[int]
    CPU_QUOTA_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    function_name: str
    handler: str
    timeout_in_ms: int
    memory_in_bytes: int
    code_dir: str
    cpu_quota: float
    concurrency: int
    def __init__(self, function_name: _Optional[str] = ..., handler: _Optional[str] = ..., timeout_in_ms: _Optional[int] = ..., memory_in_bytes: _Optional[int] = ..., code_dir: _Optional[str] = ..., cpu_quota: _Optional[float] = ..., concurrency: _Optional[int] = ...) -> None: ...

class CreateContainerRequest(_message.Message):
    __slots__ = ("request_id", "name", "function_meta")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_META_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    name: str
    function_meta: FunctionMeta
    def __init__(self, request_id: _Optional[str] = ..., name: _Optional[str] = ..., function_meta: _Optional[_Union[FunctionMeta, _Mapping]] = ...) -> None: ...

class CreateContainerReply(_message.Message):
    __slots__ = ("container_id",)
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    def __init__(self, container_id: _Optional[str] = ...) -> None: ...

class RemoveContainerRequest(_message.Message):
    __slots__ = ("request_id", "container_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    container_id: str
    def __init__(self, request_id: _Optional[str] = ..., container_id: _Optional[str] = ...) -> None: ...

class RemoveContainerReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InvokeFunctionRequest(_message.Message):
    __slots__ = ("request_id", "container_id", "event", "function_meta")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_META_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    container_id: str
    event: bytes
    function_meta: FunctionMeta
    def __init__(self, request_id: _Optional[str] = ..., container_id: _Optional[str] = ..., event: _Optional[bytes] = ..., function_meta: _Optional[_Union[FunctionMeta, _Mapping]] = ...) -> None: ...

class InvokeHeader(_message.Message):
    __slots__ = ("max_mem_usage_in_bytes", "function_log")
    MAX_MEM_USAGE_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_LOG_FIELD_NUMBER: _ClassVar[int]
    max_mem_usage_in_bytes: int
    function_log: str
    def __init__(self, max_mem_usage_in_bytes: _Optional[int] = ..., function_log: _Optional[str] = ...) -> None: ...

class InvokeFooter(_message.Message):
    __slots__ = ("duration_in_nanos", "error_code", "error_message")
    DURATION_IN_NANOS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    duration_in_nanos: int
    error_code: str
    error_message: str
    def __init__(self, duration_in_nanos: _Optional[int] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class InvokeFunctionReply(_message.Message):
    __slots__ = ("header", "body", "footer")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    FOOTER_FIELD_NUMBER: _ClassVar[int]
    header: InvokeHeader
    body: bytes
    footer: InvokeFooter
    def __init__(self, header: _Optional[_Union[InvokeHeader, _Mapping]] = ..., body: _Optional[bytes] = ..., footer: _Optional[_Union[InvokeFooter, _Mapping]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class NodeStats(_message.Message):
    __slots__ = ("total_memory_in_bytes", "memory_usage_in_bytes", "available_memory_in_bytes", "cpu_usage_pct", "spares")
    TOTAL_MEMORY_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USAGE_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_MEMORY_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_USAGE_PCT_FIELD_NUMBER: _ClassVar[int]
    SPARES_FIELD_NUMBER: _ClassVar[int]
    total_memory_in_bytes: int
    memory_usage_in_bytes: int
    available_memory_in_bytes: int
    cpu_usage_pct: float
    spares: int
    def __init__(self, total_memory_in_bytes: _Optional[int] = ..., memory_usage_in_bytes: _Optional[int] = ..., available_memory_in_bytes: _Optional[int] = ..., cpu_usage_pct: _Optional[float] = ..., spares: _Optional[int] = ...) -> None: ...

class ContainerStats(_message.Message):
    __slots__ = ("container_id", "total_memory_in_bytes", "memory_usage_in_bytes", "cpu_usage_pct", "function_name", "in_flight")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MEMORY_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USAGE_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_USAGE_PCT_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    total_memory_in_bytes: int
    memory_usage_in_bytes: int
    cpu_usage_pct: float
    function_name: str
    in_flight: int
    def __init__(self, container_id: _Optional[str] = ..., total_memory_in_bytes: _Optional[int] = ..., memory_usage_in_bytes: _Optional[int] = ..., cpu_usage_pct: _Optional[float] = ..., function_name: _Optional[str] = ..., in_flight: _Optional[int] = ...) -> None: ...

class GetStatsReply(_message.Message):
    __slots__ = ("node_stats", "container_stats_list")
    NODE_STATS_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_STATS_LIST_FIELD_NUMBER: _ClassVar[int]
    node_stats: NodeStats
    container_stats_list: _containers.RepeatedCompositeFieldContainer[ContainerStats]
    def __init__(self, node_stats: _Optional[_Union[NodeStats, _Mapping]] = ..., container_stats_list: _Optional[_Iterable[_Union[ContainerStats, _Mapping]]] = ...) -> None: ...

class ApiInvokeRequest(_message.Message):
    __slots__ = ("account_id", "function_name", "event")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    function_name: str
    event: bytes
    def __init__(self, account_id: _Optional[str] = ..., function_name: _Optional[str] = ..., event: _Optional[bytes] = ...) -> None: ...

class ApiInvokeReply(_message.Message):
    __slots__ = ("body", "function_log", "duration_in_nanos", "max_memory_usage_in_bytes", "error_code", "error_message", "node_id", "container_id", "cold", "scheduling_in_nanos")
    BODY_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_LOG_FIELD_NUMBER: _ClassVar[int]
    DURATION_IN_NANOS_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_USAGE_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    COLD_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_IN_NANOS_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    function_log: str
    duration_in_nanos: int
    max_memory_usage_in_bytes: int
    error_code: str
    error_message: str
    node_id: str
    container_id: str
    cold: bool
    scheduling_in_nanos: int
    def __init__(self, body: _Optional[bytes] = ..., function_log: _Optional[str] = ..., duration_in_nanos: _Optional[int] = ..., max_memory_usage_in_bytes: _Optional[int] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., node_id: _Optional[str] = ..., container_id: _Optional[str] = ..., cold: _Optional[bool] = ..., scheduling_in_nanos: _Optional[int] = ...) -> None: ...

class ListFunctionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FunctionInfo(_message.Message):
    __slots__ = ("function_name", "handler", "memory_in_bytes", "timeout_in_ms", "containers", "in_flight", "concurrency")
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_IN_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_IN_MS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    function_name: str
    handler: str
    memory_in_bytes: int
    timeout_in_ms: int
    containers: int
    in_flight: int
    concurrency: int
    def __init__(self, function_name: _Optional[str] = ..., handler: _Optional[str] = ..., memory_in_bytes: _Optional[int] = ..., timeout_in_ms: _Optional[int] = ..., containers: _Optional[int] = ..., in_flight: _Optional[int] = ..., concurrency: _Optional[int] = ...) -> None: ...

class ListFunctionsReply(_message.Message):
    __slots__ = ("functions",)
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    functions: _containers.RepeatedCompositeFieldContainer[FunctionInfo]
    def __init__(self, functions: _Optional[_Iterable[_Union[FunctionInfo, _Mapping]]] = ...) -> None: ...
