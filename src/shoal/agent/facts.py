"""A node's facts, built once: the wire's Facts (``shoal facts``) and, from the
same message, the plain dict the agent registers with the controller.

Hardware and OS from psutil and platform, the CPU and memory topology from
/sys (agent/topology.py), the cgroup part from the agent's sandbox host.
"""

from __future__ import annotations

import platform
import socket
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from shoal import __version__
from shoal.agent.cgroups import Host
from shoal.agent.topology import topology
from shoal.core.wire import pb


def _os_name() -> str:
    try:
        rel = platform.freedesktop_os_release()
        return str(rel.get("PRETTY_NAME") or rel.get("NAME") or platform.system())
    except OSError:
        return platform.system()


def collect_facts(host: Host | None = None) -> pb.Facts:
    import psutil

    vm = psutil.virtual_memory()
    f = pb.Facts(
        hostname=socket.gethostname(),
        cpus_logical=psutil.cpu_count(logical=True) or 0,
        cpus_physical=psutil.cpu_count(logical=False) or 0,
        memory_total=vm.total,
        memory_available=vm.available,
        os=_os_name(),
        kernel=platform.release(),
        boot_time=int(psutil.boot_time()),
        agent_version=__version__,
        topology=topology(),
    )
    link = getattr(psutil, "AF_LINK", socket.AF_PACKET)
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        iface = f.interfaces.add(name=name)
        for a in addrs:
            if a.family == link:
                iface.mac = a.address
            elif a.family in (socket.AF_INET, socket.AF_INET6):
                iface.addresses.append(a.address.split("%")[0])  # no link-local scope
    if host is not None:
        t = f.topology
        t.cgroup_version = host.version
        t.cgroup_controllers.extend(host.controllers())
        t.cpus_allowed, t.mems_allowed = host.allowed()
    return f


def plain(msg: Message) -> dict[str, Any]:
    """A message as JSON-ready values, every field present and 64-bit integers
    kept as numbers (protobuf's JSON mapping makes them strings)."""
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        v = getattr(msg, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            out[fd.name] = dict(v)
        elif fd.is_repeated:
            is_msg = fd.type == FieldDescriptor.TYPE_MESSAGE
            out[fd.name] = [plain(x) if is_msg else x for x in v]
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            out[fd.name] = plain(v)
        else:
            out[fd.name] = v
    return out


def registration_facts(f: pb.Facts) -> dict[str, Any]:
    """The controller's facts (fleet/apimodels.py Facts) from the wire's."""
    d = plain(f)
    d["memory"] = d.pop("memory_total")
    del d["memory_available"]  # a moment's value, not a fact of the node
    for itf in d["interfaces"]:
        itf["mac"] = itf["mac"] or None
    if not d["extra"]:
        del d["extra"]
    return d
