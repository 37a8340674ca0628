"""The wire: the versioned protobuf package shoal.v1 and its gRPC stubs.

faas_pb2 and faas_pb2_grpc (the mini-faas services) are imported from
shoal.core.wire.shoal.v1 by who uses them, out of every command's start-up."""

from shoal.core.wire.shoal.v1 import agent_pb2 as pb
from shoal.core.wire.shoal.v1 import agent_pb2_grpc as rpc
from shoal.core.wire.shoal.v1 import files_pb2 as fpb
from shoal.core.wire.shoal.v1 import files_pb2_grpc as frpc

__all__ = ["fpb", "frpc", "pb", "rpc"]
