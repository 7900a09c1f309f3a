//! The security posture (README "Reliability"), tested:
//! - every listener the emulator opens (REST API, function URLs, each environment's
//!   Runtime API) is on loopback, or for Docker at the bridge gateway — none on 0.0.0.0;
//! - on a Docker bridge, an environment's Runtime API admits only its own container: a
//!   container on the same network cannot take its invocations;
//! - a function sees none of the host's credentials, and its container carries no Docker
//!   socket, host path or privilege.
//!
//! Docker cases skip without a daemon and the stand-in images; fail instead with
//! `LAMBDA_TESTKIT_REQUIRE_ALL=1`.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bollard::query_parameters::InspectNetworkOptions;
use lambda_testkit::docker::DockerNetwork;
use lambda_testkit::urls::FunctionUrlConfig;
use lambda_testkit::{BackendKind, Function, Runtime};
use rstest::rstest;
use serde_json::Value;

/// What the handler saw: its variables, its mounts, and whether a Docker socket exists.
const INSPECT: &str = r#"
import json, os

def handler(event, context):
    mounts = open("/proc/self/mountinfo").read()
    return {
        "env": dict(os.environ),
        "mounts": mounts,
        "docker_sock": os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock"),
    }
"#;

/// An emulator for `backend`; Docker's on the default bridge (`DockerNetwork::HostGateway`,
/// listeners at the bridge gateway), where other containers can reach its listeners; on
/// the host's network (the Linux default) they are on loopback like the process backend's.
async fn emulator(backend: BackendKind) -> Result<lambda_testkit::Emulator, String> {
    let builder = support::builder_for(backend)?;
    let builder = match backend {
        BackendKind::Docker => builder.docker_network(DockerNetwork::HostGateway),
        _ => {
            support::python()?;
            builder
        }
    };
    builder.start().await.map_err(|e| e.to_string())
}

fn inspector(name: &str) -> Function {
    Function::new(name, Runtime::Python311)
        .handler("inspect.handler")
        .source("inspect.py", INSPECT)
}

/// Listening TCP sockets of this process: the `LISTEN` rows of `/proc/net/tcp{,6}` whose
/// inode is one of `/proc/self/fd`'s sockets.
fn own_listeners() -> Vec<SocketAddr> {
    let inodes: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let mut found = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode
            if cols.len() < 10 || cols[3] != "0A" || !inodes.iter().any(|i| i == cols[9]) {
                continue;
            }
            found.push(parse_proc_addr(cols[1], v6));
        }
    }
    found
}

/// `0100007F:1F90` (IPv4, the address's bytes in host order) or 32 hex digits (IPv6, four
/// 32-bit words in host order) and a hex port.
fn parse_proc_addr(field: &str, v6: bool) -> SocketAddr {
    let (ip, port) = field.split_once(':').unwrap();
    let port = u16::from_str_radix(port, 16).unwrap();
    let ip = if v6 {
        let mut bytes = [0u8; 16];
        for (i, word) in bytes.chunks_mut(4).enumerate() {
            let w = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).unwrap();
            word.copy_from_slice(&w.to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).unwrap().to_ne_bytes(),
        ))
    };
    SocketAddr::new(ip, port)
}

/// The default bridge's gateway (where the Docker backend's listeners bind): the one its
/// IPAM config names, else its subnet's first address, as the backend finds it (Debian's
/// dockerd 20.10 on a fresh machine reports `{"Subnet": "172.17.0.0/16"}` and no gateway
/// for `bridge`; docker0 is 172.17.0.1).
async fn bridge_gateway() -> IpAddr {
    let docker = support::docker_client().await.unwrap();
    let network = docker
        .inspect_network("bridge", None::<InspectNetworkOptions>)
        .await
        .unwrap();
    let config = network
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().next())
        .expect("the bridge network has an IPAM config");
    if let Some(gateway) = config.gateway.and_then(|g| g.parse().ok()) {
        return gateway;
    }
    let subnet = config.subnet.expect("the bridge network has a subnet");
    let (network, _) = subnet.split_once('/').expect("a CIDR subnet");
    let network: Ipv4Addr = network.parse().expect("an IPv4 subnet");
    IpAddr::V4(Ipv4Addr::from(u32::from(network) + 1))
}

#[rstest]
#[tokio::test]
async fn every_listener_is_on_loopback_or_the_bridge_gateway(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(emulator(backend).await);
    let before = own_listeners().len();
    let rest = emu.endpoint_url().to_string();
    let f = emu.deploy(inspector("listeners")).await?;
    let url = f.create_url(FunctionUrlConfig::new()).await?;
    let out = f.invoke("{}").await?;
    assert!(out.function_error.is_none(), "{}", out.log);

    let allowed_off_loopback = match backend {
        BackendKind::Docker => Some(bridge_gateway().await),
        _ => None,
    };
    let listeners = own_listeners();
    // The REST API, the URL and the environment's Runtime API at least.
    assert!(
        listeners.len() >= before + 3,
        "expected the REST, URL and Runtime API listeners, found {listeners:?}"
    );
    for addr in &listeners {
        let ip = addr.ip();
        assert!(
            ip.is_loopback() || Some(ip) == allowed_off_loopback,
            "a listener at {addr} (REST {rest}, URL {}): only loopback{} is allowed",
            url.url(),
            allowed_off_loopback
                .map(|g| format!(" and the bridge gateway {g}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// A container on the environment's bridge network that asks its Runtime API for the next
/// invocation: prints `STATUS <code>` for an HTTP answer, `TIMEOUT` when the connection is
/// held open (the emulator would have served it), `CLOSED <error>` when it is dropped.
const INTRUDER: &str = r#"
import socket, sys, urllib.error, urllib.request
url = "http://host.docker.internal:%s/2018-06-01/runtime/invocation/next" % sys.argv[1]
try:
    r = urllib.request.urlopen(url, timeout=6)
    print("STATUS", r.status, r.headers.get("lambda-runtime-aws-request-id"))
except urllib.error.HTTPError as e:
    print("STATUS", e.code)
except Exception as e:
    text = str(e)
    print("TIMEOUT" if "timed out" in text else "CLOSED", type(e).__name__, text)
"#;

#[tokio::test]
async fn a_container_on_the_bridge_cannot_take_an_environments_invocations() -> anyhow::Result<()> {
    let emu = require!(emulator(BackendKind::Docker).await);
    let f = emu.deploy(inspector("guarded")).await?;
    let seen: Value = serde_json::from_slice(&f.invoke("{}").await?.payload)?;
    let runtime_api = seen["env"]["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap();
    let port = runtime_api.rsplit(':').next().unwrap().to_string();

    let intruder = tokio::task::spawn_blocking(move || {
        std::process::Command::new("docker")
            .args([
                "run",
                "--rm",
                "--add-host",
                "host.docker.internal:host-gateway",
            ])
            .args([
                "--label",
                &format!("{}={}", support::TEST_RUN_LABEL, support::test_run()),
            ])
            .args([
                "--entrypoint",
                "/var/lang/bin/python3",
                support::PYTHON_IMAGE,
                "-c",
                INTRUDER,
                &port,
            ])
            .output()
    });
    // While the intruder would be waiting on /next, the function is invoked: an open
    // Runtime API could hand it one of these.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..3 {
        let out = f.invoke("{}").await?;
        assert!(out.function_error.is_none(), "{}", out.log);
    }
    let output = intruder.await??;
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.starts_with("CLOSED"),
        "the intruder must be cut off, it printed {printed:?} (stderr {:?})",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Variables a function may see: Lambda's reserved ones and the image's own basics.
fn expected_variable(name: &str) -> bool {
    name.starts_with("AWS_")
        || name.starts_with("LAMBDA_")
        || name.starts_with("_")
        || matches!(
            name,
            "PATH"
                | "LC_CTYPE"
                | "LANG"
                | "TZ"
                | "LD_LIBRARY_PATH"
                | "PYTHONPATH"
                | "HOME"
                | "HOSTNAME"
                | "PWD"
                | "SHLVL"
        )
}

#[rstest]
#[test]
fn a_function_sees_no_host_credential_and_its_container_no_host_resource(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    const SECRET: &str = "host-secret-never-in-a-function";
    // SAFETY: set before any other thread of this test process exists (nextest runs each
    // test in its own process; the runtime is built below).
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIAHOSTKEY");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
        std::env::set_var("AWS_SESSION_TOKEN", SECRET);
        std::env::set_var("LAMBDA_TESTKIT_HOST_ONLY", SECRET);
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let emu = require!(emulator(backend).await);
        let f = emu.deploy(inspector("sealed")).await?;
        let out = f.invoke("{}").await?;
        assert!(out.function_error.is_none(), "{}", out.log);
        let seen: Value = serde_json::from_slice(&out.payload)?;
        let env = seen["env"].as_object().unwrap();
        assert!(
            !out.payload
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes()),
            "a host secret reached the function: {env:?}"
        );
        assert_ne!(env["AWS_ACCESS_KEY_ID"], "AKIAHOSTKEY");
        assert!(!env.contains_key("LAMBDA_TESTKIT_HOST_ONLY"));
        if backend != BackendKind::Docker {
            return Ok(());
        }
        let unexpected: Vec<&String> = env.keys().filter(|k| !expected_variable(k)).collect();
        assert!(unexpected.is_empty(), "unexpected variables {unexpected:?}");
        assert_eq!(
            seen["docker_sock"], false,
            "a Docker socket in the container"
        );
        let mounts = seen["mounts"].as_str().unwrap();
        assert!(!mounts.contains("docker.sock"), "{mounts}");

        let docker = support::docker_client().await.unwrap();
        let id = support::environment_container("sealed").await;
        let inspected = docker
            .inspect_container(
                &id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await?;
        let host = inspected.host_config.unwrap_or_default();
        assert_ne!(host.privileged, Some(true));
        assert!(
            host.binds.unwrap_or_default().is_empty(),
            "host paths bound in"
        );
        assert!(host.cap_add.unwrap_or_default().is_empty());
        assert!(!matches!(host.pid_mode.as_deref(), Some("host")));
        assert!(!matches!(host.network_mode.as_deref(), Some("host")));
        for mount in inspected.mounts.unwrap_or_default() {
            assert_eq!(
                mount.typ.as_deref(),
                Some("volume"),
                "only the code volumes are mounted, found {mount:?}"
            );
            assert!(
                matches!(mount.destination.as_deref(), Some("/var/task" | "/opt")),
                "{mount:?}"
            );
        }
        Ok(())
    })
}
