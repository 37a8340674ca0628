from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_UNSPECIFIED: _ClassVar[State]
    STATE_OK: _ClassVar[State]
    STATE_FAILED: _ClassVar[State]
    STATE_TIMEOUT: _ClassVar[State]
    STATE_UNREACHABLE: _ClassVar[State]
    STATE_REFUSED: _ClassVar[State]
    STATE_OOM: _ClassVar[State]
STATE_UNSPECIFIED: State
STATE_OK: State
STATE_FAILED: State
STATE_TIMEOUT: State
STATE_UNREACHABLE: State
STATE_REFUSED: State
STATE_OOM: State

class Subtree(_message.Message):
    __slots__ = ("name", "address", "children")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    children: _containers.RepeatedCompositeFieldContainer[Subtree]
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., children: _Optional[_Iterable[_Union[Subtree, _Mapping]]] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("start_ns", "end_ns")
    START_NS_FIELD_NUMBER: _ClassVar[int]
    END_NS_FIELD_NUMBER: _ClassVar[int]
    start_ns: int
    end_ns: int
    def __init__(self, start_ns: _Optional[int] = ..., end_ns: _Optional[int] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("cpus", "mems", "memory", "cpu_quota", "pids", "scratch")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    CPU_QUOTA_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    SCRATCH_FIELD_NUMBER: _ClassVar[int]
    cpus: str
    mems: str
    memory: int
    cpu_quota: float
    pids: int
    scratch: str
    def __init__(self, cpus: _Optional[str] = ..., mems: _Optional[str] = ..., memory: _Optional[int] = ..., cpu_quota: _Optional[float] = ..., pids: _Optional[int] = ..., scratch: _Optional[str] = ...) -> None: ...

class ExecTask(_message.Message):
    __slots__ = ("command", "env", "cwd", "timeout", "resources", "stdin")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    command: str
    env: _containers.ScalarMap[str, str]
    cwd: str
    timeout: float
    resources: Resources
    stdin: bytes
    def __init__(self, command: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., cwd: _Optional[str] = ..., timeout: _Optional[float] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., stdin: _Optional[bytes] = ...) -> None: ...

class PingTask(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JobTask(_message.Message):
    __slots__ = ("job_id", "kind", "label", "stamp", "plans")
    class PlansEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: JobPlan
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[JobPlan, _Mapping]] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    STAMP_FIELD_NUMBER: _ClassVar[int]
    PLANS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    label: str
    stamp: bool
    plans: _containers.MessageMap[str, JobPlan]
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., label: _Optional[str] = ..., stamp: _Optional[bool] = ..., plans: _Optional[_Mapping[str, JobPlan]] = ...) -> None: ...

class JobPlan(_message.Message):
    __slots__ = ("stages",)
    STAGES_FIELD_NUMBER: _ClassVar[int]
    stages: _containers.RepeatedCompositeFieldContainer[JobStage]
    def __init__(self, stages: _Optional[_Iterable[_Union[JobStage, _Mapping]]] = ...) -> None: ...

class JobStage(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[JobStep]
    def __init__(self, steps: _Optional[_Iterable[_Union[JobStep, _Mapping]]] = ...) -> None: ...

class JobStep(_message.Message):
    __slots__ = ("name", "exec")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXEC_FIELD_NUMBER: _ClassVar[int]
    name: str
    exec: ExecTask
    def __init__(self, name: _Optional[str] = ..., exec: _Optional[_Union[ExecTask, _Mapping]] = ...) -> None: ...

class JobQuery(_message.Message):
    __slots__ = ("job_id", "kind", "stop", "forget")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    FORGET_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    stop: bool
    forget: bool
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., stop: _Optional[bool] = ..., forget: _Optional[bool] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "kind", "label", "state", "stage", "stages", "dir", "started_ns", "ended_ns", "steps", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    STARTED_NS_FIELD_NUMBER: _ClassVar[int]
    ENDED_NS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    label: str
    state: str
    stage: int
    stages: int
    dir: str
    started_ns: int
    ended_ns: int
    steps: _containers.RepeatedCompositeFieldContainer[JobStepResult]
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., label: _Optional[str] = ..., state: _Optional[str] = ..., stage: _Optional[int] = ..., stages: _Optional[int] = ..., dir: _Optional[str] = ..., started_ns: _Optional[int] = ..., ended_ns: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[JobStepResult, _Mapping]]] = ..., reason: _Optional[str] = ...) -> None: ...

class JobStepResult(_message.Message):
    __slots__ = ("name", "result")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    result: Result
    def __init__(self, name: _Optional[str] = ..., result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class FactsTask(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Grant(_message.Message):
    __slots__ = ("issued_ns", "root", "body")
    ISSUED_NS_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    issued_ns: int
    root: Subtree
    body: bytes
    def __init__(self, issued_ns: _Optional[int] = ..., root: _Optional[_Union[Subtree, _Mapping]] = ..., body: _Optional[bytes] = ...) -> None: ...

class Signed(_message.Message):
    __slots__ = ("grant", "signature", "certificate")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    grant: bytes
    signature: bytes
    certificate: bytes
    def __init__(self, grant: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., certificate: _Optional[bytes] = ...) -> None: ...

class TaskRequest(_message.Message):
    __slots__ = ("tree", "connect_timeout", "task_id", "signed", "exec", "ping", "facts", "job", "jobs")
    TREE_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    EXEC_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    tree: Subtree
    connect_timeout: float
    task_id: str
    signed: Signed
    exec: ExecTask
    ping: PingTask
    facts: FactsTask
    job: JobTask
    jobs: JobQuery
    def __init__(self, tree: _Optional[_Union[Subtree, _Mapping]] = ..., connect_timeout: _Optional[float] = ..., task_id: _Optional[str] = ..., signed: _Optional[_Union[Signed, _Mapping]] = ..., exec: _Optional[_Union[ExecTask, _Mapping]] = ..., ping: _Optional[_Union[PingTask, _Mapping]] = ..., facts: _Optional[_Union[FactsTask, _Mapping]] = ..., job: _Optional[_Union[JobTask, _Mapping]] = ..., jobs: _Optional[_Union[JobQuery, _Mapping]] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("stream", "data", "offset")
    class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STDOUT: _ClassVar[Output.Stream]
        STDERR: _ClassVar[Output.Stream]
    STDOUT: Output.Stream
    STDERR: Output.Stream
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    stream: Output.Stream
    data: bytes
    offset: int
    def __init__(self, stream: _Optional[_Union[Output.Stream, str]] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("state", "exit_code", "reason", "timing", "output_dropped", "cpu_ns", "peak_memory", "scratch_freed")
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DROPPED_FIELD_NUMBER: _ClassVar[int]
    CPU_NS_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_FIELD_NUMBER: _ClassVar[int]
    SCRATCH_FREED_FIELD_NUMBER: _ClassVar[int]
    state: State
    exit_code: int
    reason: str
    timing: Timing
    output_dropped: int
    cpu_ns: int
    peak_memory: int
    scratch_freed: int
    def __init__(self, state: _Optional[_Union[State, str]] = ..., exit_code: _Optional[int] = ..., reason: _Optional[str] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., output_dropped: _Optional[int] = ..., cpu_ns: _Optional[int] = ..., peak_memory: _Optional[int] = ..., scratch_freed: _Optional[int] = ...) -> None: ...

class Interface(_message.Message):
    __slots__ = ("name", "mac", "addresses")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    name: str
    mac: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., mac: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class Facts(_message.Message):
    __slots__ = ("hostname", "cpus_logical", "cpus_physical", "memory_total", "memory_available", "interfaces", "os", "kernel", "boot_time", "agent_version", "extra", "topology")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CPUS_LOGICAL_FIELD_NUMBER: _ClassVar[int]
    CPUS_PHYSICAL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    BOOT_TIME_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    cpus_logical: int
    cpus_physical: int
    memory_total: int
    memory_available: int
    interfaces: _containers.RepeatedCompositeFieldContainer[Interface]
    os: str
    kernel: str
    boot_time: int
    agent_version: str
    extra: _containers.ScalarMap[str, str]
    topology: Topology
    def __init__(self, hostname: _Optional[str] = ..., cpus_logical: _Optional[int] = ..., cpus_physical: _Optional[int] = ..., memory_total: _Optional[int] = ..., memory_available: _Optional[int] = ..., interfaces: _Optional[_Iterable[_Union[Interface, _Mapping]]] = ..., os: _Optional[str] = ..., kernel: _Optional[str] = ..., boot_time: _Optional[int] = ..., agent_version: _Optional[str] = ..., extra: _Optional[_Mapping[str, str]] = ..., topology: _Optional[_Union[Topology, _Mapping]] = ...) -> None: ...

class Topology(_message.Message):
    __slots__ = ("cpus", "nodes", "thp", "thp_defrag", "cgroup_version", "cgroup_controllers", "cpus_allowed", "mems_allowed", "governor")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    THP_FIELD_NUMBER: _ClassVar[int]
    THP_DEFRAG_FIELD_NUMBER: _ClassVar[int]
    CGROUP_VERSION_FIELD_NUMBER: _ClassVar[int]
    CGROUP_CONTROLLERS_FIELD_NUMBER: _ClassVar[int]
    CPUS_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    MEMS_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    GOVERNOR_FIELD_NUMBER: _ClassVar[int]
    cpus: _containers.RepeatedCompositeFieldContainer[Cpu]
    nodes: _containers.RepeatedCompositeFieldContainer[MemoryNode]
    thp: str
    thp_defrag: str
    cgroup_version: int
    cgroup_controllers: _containers.RepeatedScalarFieldContainer[str]
    cpus_allowed: str
    mems_allowed: str
    governor: str
    def __init__(self, cpus: _Optional[_Iterable[_Union[Cpu, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[MemoryNode, _Mapping]]] = ..., thp: _Optional[str] = ..., thp_defrag: _Optional[str] = ..., cgroup_version: _Optional[int] = ..., cgroup_controllers: _Optional[_Iterable[str]] = ..., cpus_allowed: _Optional[str] = ..., mems_allowed: _Optional[str] = ..., governor: _Optional[str] = ...) -> None: ...

class Cpu(_message.Message):
    __slots__ = ("cpu", "core", "package", "node", "siblings", "l3")
    CPU_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    SIBLINGS_FIELD_NUMBER: _ClassVar[int]
    L3_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    core: int
    package: int
    node: int
    siblings: str
    l3: int
    def __init__(self, cpu: _Optional[int] = ..., core: _Optional[int] = ..., package: _Optional[int] = ..., node: _Optional[int] = ..., siblings: _Optional[str] = ..., l3: _Optional[int] = ...) -> None: ...

class MemoryNode(_message.Message):
    __slots__ = ("node", "cpus", "memory_total", "memory_free", "hugepages")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FREE_FIELD_NUMBER: _ClassVar[int]
    HUGEPAGES_FIELD_NUMBER: _ClassVar[int]
    node: int
    cpus: str
    memory_total: int
    memory_free: int
    hugepages: _containers.RepeatedCompositeFieldContainer[HugePages]
    def __init__(self, node: _Optional[int] = ..., cpus: _Optional[str] = ..., memory_total: _Optional[int] = ..., memory_free: _Optional[int] = ..., hugepages: _Optional[_Iterable[_Union[HugePages, _Mapping]]] = ...) -> None: ...

class HugePages(_message.Message):
    __slots__ = ("size", "total", "free")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    size: int
    total: int
    free: int
    def __init__(self, size: _Optional[int] = ..., total: _Optional[int] = ..., free: _Optional[int] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("node", "output", "result", "facts", "job")
    NODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    node: str
    output: Output
    result: Result
    facts: Facts
    job: JobStatus
    def __init__(self, node: _Optional[str] = ..., output: _Optional[_Union[Output, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., facts: _Optional[_Union[Facts, _Mapping]] = ..., job: _Optional[_Union[JobStatus, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("task_id", "node")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    node: str
    def __init__(self, task_id: _Optional[str] = ..., node: _Optional[str] = ...) -> None: ...

class CancelReply(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...
