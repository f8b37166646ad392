#!/usr/bin/env python3
"""Calls a Backstop node knowing nothing but gRPC server reflection.

Usage: reflect.py HOST:PORT

Lists the services the server exposes through reflection, fetches the descriptors of
backstop.v1.Backstop, builds the request and response classes from them (no generated
code, no .proto files), calls backstop.v1.Backstop/GetStatus and prints one JSON
document on stdout:

    {"services": [...], "status": {...GetStatusResponse fields...}}

Exits 1 when the server cannot be reached or a call fails, 2 on bad usage.
Needs grpcio, grpcio-reflection and protobuf (testnet/install-python-deps).
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "backstop.v1.Backstop"
METHOD = "GetStatus"
TIMEOUT_S = 10


def main(argv):
    if len(argv) != 2 or ":" not in argv[1]:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    target = argv[1]
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)
        except grpc.FutureTimeoutError:
            print(f"reflect.py: cannot connect to {target} within {TIMEOUT_S}s", file=sys.stderr)
            return 1

        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        if SERVICE not in services:
            print(f"reflect.py: {SERVICE} not among the reflected services {services}", file=sys.stderr)
            return 1

        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName(SERVICE).methods_by_name[METHOD]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{SERVICE}/{METHOD}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = call(request_class(), timeout=TIMEOUT_S)
        status = json_format.MessageToDict(
            response,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
    print(json.dumps({"services": services, "status": status}, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except grpc.RpcError as e:
        print(f"reflect.py: RPC failed: {e.code()}: {e.details()}", file=sys.stderr)
        sys.exit(1)
