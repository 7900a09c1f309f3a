//! Functions that reach what the test started: on the Docker backend a function joins the
//! test's Docker network and queries a real PostgreSQL container started with
//! testcontainers by its alias `db`; other containers reach a function by its name; a
//! missing network is a clear error; on the process backend a function reaches a port the
//! test opened on 127.0.0.1 directly.
//!
//! The Postgres image is `lambda-testkit/postgres:15`, built from Debian's packages by
//! `scripts/postgres-image` (scripts/test runs it; no registry is reachable); the Python
//! driver is pg8000, pure Python, installed by `scripts/setup` into
//! `target/testkit/pg8000-layer` and deployed as a layer. Skipped without them, failed
//! instead with `LAMBDA_TESTKIT_REQUIRE_ALL=1`.

mod support;

use std::time::Duration;

use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest};
use lambda_testkit::error::BackendError;
use lambda_testkit::{BackendKind, EmulatorError, Function, Layer, Runtime};
use serde_json::{Value, json};
use testcontainers::core::{ExecCommand, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POSTGRES_IMAGE: &str = "lambda-testkit/postgres";
const POSTGRES_TAG: &str = "15";

/// The handler: connects to `db:5432` with pg8000, makes the table, inserts the event's
/// `insert` (returning its id) or lists every item with a `select 1` beside them.
const ORDERS_HANDLER: &str = r#"import pg8000.native

def handler(event, context):
    con = pg8000.native.Connection(
        "postgres", password="postgres", host="db", port=5432, database="postgres", timeout=5
    )
    try:
        con.run("create table if not exists orders (id serial primary key, item text not null)")
        if "insert" in event:
            [[order_id]] = con.run("insert into orders (item) values (:item) returning id", item=event["insert"])
            return {"id": order_id}
        [[one]] = con.run("select 1")
        return {"one": one, "items": [item for [item] in con.run("select item from orders order by id")]}
    finally:
        con.close()
"#;

/// A network name of this test alone.
fn network_name(test: &str) -> String {
    format!(
        "ltk-{test}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Docker, the Python stand-in and the Postgres image (skip reason otherwise).
fn postgres_ready() -> Result<(), String> {
    support::image_ready(format!("{POSTGRES_IMAGE}:{POSTGRES_TAG}"))
        .map_err(|e| format!("{e} (the Postgres image is made by scripts/postgres-image)"))
}

/// Postgres on `network` (testcontainers creates the network, and removes it when its last
/// container goes), ready for connections, with the network alias `db`.
async fn start_postgres(network: &str) -> anyhow::Result<ContainerAsync<GenericImage>> {
    let db = GenericImage::new(POSTGRES_IMAGE, POSTGRES_TAG)
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_network(network)
        .with_label(support::TEST_RUN_LABEL, support::test_run())
        .start()
        .await?;
    // testcontainers names no aliases: join the network again, as `db`.
    let docker = support::docker_client().await.map_err(anyhow::Error::msg)?;
    docker
        .disconnect_network(
            network,
            NetworkDisconnectRequest {
                container: db.id().to_string(),
                force: Some(true),
            },
        )
        .await?;
    docker
        .connect_network(
            network,
            NetworkConnectRequest {
                container: db.id().to_string(),
                endpoint_config: Some(EndpointSettings {
                    aliases: Some(vec!["db".to_string()]),
                    ..Default::default()
                }),
            },
        )
        .await?;
    Ok(db)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_on_the_tests_network_writes_and_reads_postgres_by_its_alias()
-> anyhow::Result<()> {
    require!(postgres_ready());
    let pg8000 = require!(support::pg8000_layer());
    let network = network_name("pg");
    let db = start_postgres(&network).await?;
    // Declared after the database: dropped first, so the network is free when it goes.
    let emu = require!(support::builder_for(BackendKind::Docker))
        .network(&network)
        .start()
        .await?;
    let f = emu
        .deploy(
            Function::new("orders", Runtime::Python311)
                .handler("app.handler")
                .source("app.py", ORDERS_HANDLER)
                .layer(Layer::new("pg8000").code(pg8000))
                .timeout(Duration::from_secs(10)),
        )
        .await?;

    let inserted: Value = f.invoke_json(&json!({"insert": "coffee"})).await?;
    assert_eq!(inserted, json!({"id": 1}));
    let listed: Value = f.invoke_json(&json!({})).await?;
    assert_eq!(listed, json!({"one": 1, "items": ["coffee"]}));

    // The row is in the database itself, as a second client sees it.
    let mut psql = db
        .exec(ExecCommand::new([
            "psql",
            "-U",
            "postgres",
            "-tAc",
            "select id, item from orders",
        ]))
        .await?;
    let rows = String::from_utf8(psql.stdout_to_vec().await?)?;
    assert_eq!(rows.trim(), "1|coffee");
    assert_eq!(f.stats().cold_starts, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_on_the_network_reach_a_functions_containers_by_its_name_and_aliases()
-> anyhow::Result<()> {
    let docker = require!(support::docker_client().await);
    require!(support::docker_ready());
    let network = network_name("alias");
    docker
        .create_network(bollard::models::NetworkCreateRequest {
            name: network.clone(),
            labels: Some([(support::TEST_RUN_LABEL.to_string(), support::test_run())].into()),
            ..Default::default()
        })
        .await?;
    let result = async {
        let emu = support::builder_for(BackendKind::Docker)
            .map_err(anyhow::Error::msg)?
            .network(&network)
            .network_alias("target", "target-api")
            .start()
            .await?;
        let resolve = "import socket\n\ndef handler(event, context):\n    return {name: sorted({a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET)}) for name in event['names']}\n";
        let target = emu
            .deploy(
                Function::new("target", Runtime::Python311)
                    .handler("app.handler")
                    .source("app.py", resolve),
            )
            .await?;
        let probe = emu
            .deploy(
                Function::new("probe", Runtime::Python311)
                    .handler("app.handler")
                    .source("app.py", resolve),
            )
            .await?;
        // The target's one environment, warm now; the probe resolves it from another
        // container on the network.
        let own: Value = target.invoke_json(&json!({"names": ["target"]})).await?;
        let seen: Value = probe
            .invoke_json(&json!({"names": ["target", "target-api", "probe", "host.docker.internal"]}))
            .await?;
        // The Runtime API is reached at the network's gateway: where the listener binds.
        let gateway = docker
            .inspect_network(
                &network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await?
            .ipam
            .and_then(|ipam| ipam.config)
            .and_then(|configs| configs.into_iter().find_map(|c| c.gateway))
            .expect("the network's gateway");
        assert_eq!(seen["host.docker.internal"], json!([gateway]), "{seen}");
        assert_eq!(seen["target"], own["target"], "{seen}");
        assert_eq!(seen["target-api"], own["target"], "{seen}");
        assert_eq!(seen["target"].as_array().map(Vec::len), Some(1), "{seen}");
        assert_eq!(seen["probe"].as_array().map(Vec::len), Some(1), "{seen}");
        assert_ne!(seen["probe"], seen["target"]);
        emu.shutdown().await;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    docker.remove_network(&network).await?;
    result
}

#[tokio::test]
async fn joining_a_network_that_does_not_exist_fails_naming_it() -> anyhow::Result<()> {
    let builder = require!(support::builder_for(BackendKind::Docker));
    let network = network_name("missing");
    let err = builder
        .network(&network)
        .start()
        .await
        .expect_err("an error");
    match &err {
        EmulatorError::Backend(BackendError::Network {
            network: name,
            reason,
        }) => {
            assert_eq!(name, &network);
            assert_eq!(reason, "no such network");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("docker network create"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_process_backend_function_reaches_a_port_the_test_opened_on_loopback()
-> anyhow::Result<()> {
    let emu = require!(support::python_emulator(BackendKind::Process).await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut request = vec![0; 64];
        let n = socket.read(&mut request).await?;
        let reply = format!("pong {}", String::from_utf8_lossy(&request[..n]));
        socket.write_all(reply.as_bytes()).await?;
        Ok::<_, std::io::Error>(())
    });
    let f = emu
        .deploy(
            Function::new("client", Runtime::Python311)
                .handler("app.handler")
                .source(
                    "app.py",
                    "import socket\n\ndef handler(event, context):\n    with socket.create_connection(('127.0.0.1', event['port']), timeout=2) as s:\n        s.sendall(b'ping')\n        return s.recv(64).decode()\n",
                ),
        )
        .await?;
    let reply: String = f.invoke_json(&json!({"port": port})).await?;
    assert_eq!(reply, "pong ping");
    server.await??;
    Ok(())
}
