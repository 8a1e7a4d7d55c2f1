"""This node, its user and its cluster: ``/v1/node``, ``/v1/users``, ``/v1/cluster``, ``/v1/peers``."""

from __future__ import annotations

from fastapi import APIRouter

from mediator_desktop._version import __version__
from mediator_desktop.api.deps import ServiceDep
from mediator_desktop.api.models import (
    AddressBody,
    ClusterModel,
    JoinBody,
    JoinCodeBody,
    JoinCodeModel,
    MemberModel,
    NodeInfo,
    PeerModel,
    UserModel,
)
from mediator_desktop.core.service import Service

router = APIRouter()


def cluster_model(service: Service) -> ClusterModel:
    status = service.cluster.status()
    return ClusterModel(
        self_address=status.self_address,
        leader=status.leader,
        has_quorum=status.has_quorum,
        term=status.term,
        commit_index=status.commit_index,
        members=[
            MemberModel(address=m.address, connected=m.connected, is_self=m.is_self, is_leader=m.is_leader)
            for m in status.members
        ],
    )


@router.get("/v1/node", tags=["node"])
def get_node(service: ServiceDep) -> NodeInfo:
    settings = service.settings.get()
    return NodeInfo(
        version=__version__,
        key_id=service.key_id,
        display_name=service.display_name,
        data_dir=str(service.settings.data_dir),
        download_dir=str(settings.download_dir),
        raft_address=settings.raft_address,
    )


@router.get("/v1/users", tags=["node"])
def get_users(service: ServiceDep) -> list[UserModel]:
    return [UserModel(key_id=k, display_name=n) for k, n in sorted(service.users().items())]


@router.get("/v1/cluster", tags=["cluster"])
def get_cluster(service: ServiceDep) -> ClusterModel:
    return cluster_model(service)


@router.get("/v1/peers", tags=["cluster"])
def get_peers(service: ServiceDep) -> list[PeerModel]:
    return [
        PeerModel(
            node_id=p.node_id,
            name=p.name,
            raft_address=p.raft_address,
            version=p.version,
            protocol=p.protocol,
            status=p.status,
        )
        for p in service.cluster.peers()
    ]


@router.post("/v1/cluster/join-code", tags=["cluster"])
def post_join_code(body: JoinCodeBody, service: ServiceDep) -> JoinCodeModel:
    return JoinCodeModel(code=service.cluster.create_join_code(body.ttl))


@router.post("/v1/cluster/join", tags=["cluster"])
def post_join(body: JoinBody, service: ServiceDep) -> ClusterModel:
    service.cluster.join(body.code)
    return cluster_model(service)


@router.post("/v1/cluster/leave", tags=["cluster"])
def post_leave(service: ServiceDep) -> ClusterModel:
    service.cluster.leave()
    return cluster_model(service)


@router.post("/v1/cluster/remove", tags=["cluster"])
def post_remove(body: AddressBody, service: ServiceDep) -> ClusterModel:
    service.cluster.remove_member(body.address)
    return cluster_model(service)
