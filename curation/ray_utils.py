"""Starting or joining Ray, in one place.

By default Ray starts embedded and local, bound to 127.0.0.1 (Ray otherwise binds
to the public interface). ``address`` (or the RAY_ADDRESS environment variable)
joins an existing cluster instead.
"""

from __future__ import annotations

import logging
import os
import socket

import ray

logger = logging.getLogger(__name__)


def init_ray(address: str | None = None, num_workers: int | None = None, dashboard: bool = False) -> None:
    """Initialise Ray once per process (a no-op when it is already initialised)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Auth: we leave RAY_AUTH_MODE as the user set it. Unset, Ray 2.60 turns token
    # authentication on for a new local cluster (token in ~/.ray/auth_token) and
    # uses the same token file when joining; we keep that default on purpose.
    # Ray's C++ side reads the mode once, when ray is imported: if the variable was
    # set after that (by a caller), refresh it so the driver and the servers agree.
    if os.environ.get("RAY_AUTH_MODE"):
        from ray._raylet import Config

        Config.initialize("")
    # Workers import our packages from the driver's working directory.
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in [os.getcwd(), os.environ.get("PYTHONPATH")] if p)}}
    if address:
        logger.info("joining Ray cluster at %s", address)
        _token_auth_if_configured()
        if _loopback_only(address):
            # a cluster in Ray's single-machine mode (its servers listen on 127.0.0.1 only): without
            # that mode here too, Ray would rewrite 127.0.0.1 to this machine's public address and
            # never connect. (A multi-node cluster listens on every interface and registers its nodes
            # under the public address even when started with --node-ip-address=127.0.0.1.)
            _single_machine_mode()
            ray.init(address=address, log_to_driver=True, runtime_env=env, _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=True, runtime_env=env)
        return
    _single_machine_mode()
    ray.init(
        num_cpus=num_workers or os.cpu_count(),
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        _node_ip_address="127.0.0.1",
        log_to_driver=True,
        runtime_env=env,
        configure_logging=False,
    )
    logger.info("started a local Ray (%s CPUs) on 127.0.0.1", num_workers or os.cpu_count())


def _single_machine_mode() -> None:
    """Make Ray keep 127.0.0.1 as given. Ray resolves "127.0.0.1" to the public interface unless its
    single-machine mode is on; that mode is read from this variable (by this process and by the raylet
    and workers it starts), so set it for them and for the loaded module."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def _token_auth_if_configured() -> None:
    """Joining a cluster: send the token when one is configured and RAY_AUTH_MODE is unset.

    Clusters started with `ray start` use token authentication (our cluster.yaml sets it; Ray 2.61
    makes it the default everywhere), but a driver started without RAY_AUTH_MODE (e.g. by `ray
    submit` over ssh) sends no token and is refused. RAY_AUTH_MODE=disabled opts out."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(token_file):
        os.environ["RAY_AUTH_MODE"] = "token"
        from ray._raylet import Config

        Config.initialize("")
        logger.info("joining with token authentication (token from %s)",
                    "RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN") else token_file)


def _loopback_only(address: str) -> bool:
    """True when ``address`` is a loopback GCS that cannot be reached through this machine's public address."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        return False
    from ray._private.services import node_ip_address_from_perspective

    public = node_ip_address_from_perspective()
    if public.startswith("127."):
        return False
    try:
        with socket.create_connection((public, int(port)), timeout=2):
            return False
    except OSError:
        return True
