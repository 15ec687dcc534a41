//! Processes the tests run of their own: the `shoplens` binary, and a
//! ClickHouse server or a broker with data of their own that a test can stop
//! without disturbing the others. Each is killed (and its data removed) on
//! drop, so a failing test leaves nothing running behind it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shoplens::http_get::get;
use shoplens::Settings;

use crate::{eventually, repo_path, unique, within};

/// The `shoplens` binary of this build (built before the tests run).
pub fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path("target"));
    let bin = target.join("debug").join("shoplens");
    assert!(
        bin.exists(),
        "{} missing: cargo build --bin shoplens",
        bin.display()
    );
    bin
}

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves
/// no pipeline running behind it.
pub struct Running(pub Child);

impl Running {
    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM (the process flushes, commits and leaves the group), then
    /// waits up to 20 s for it to exit.
    pub async fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let child = &mut self.0;
        let _ = within(Duration::from_secs(20), || {
            let exited = !matches!(child.try_wait(), Ok(None));
            async move { exited.then_some(()).ok_or_else(|| "running".to_string()) }
        })
        .await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `shoplens run` as a child process configured like `s`, through
/// `SECTION__KEY` variables, serving /metrics on `metrics`.
pub fn spawn(s: &Settings, metrics: &str, log: &PathBuf) -> Running {
    let t = &s.kafka.topics;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(binary())
        .arg("run")
        .env_remove("SHOPLENS_CONFIG")
        // `SHOPLENS_TEST_CHILD_LOG` (say `info,librdkafka=debug`, with
        // `KAFKA__LIBRDKAFKA__DEBUG=cgrp`) to see more of the children.
        .env(
            "RUST_LOG",
            std::env::var("SHOPLENS_TEST_CHILD_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("KAFKA__BROKERS", &s.kafka.brokers)
        .env("KAFKA__GROUP_ID", &s.kafka.group_id)
        .env("KAFKA__TOPICS__CLICKSTREAM", &t.clickstream)
        .env("KAFKA__TOPICS__ORDERS", &t.orders)
        .env("KAFKA__TOPICS__SPEND", &t.spend)
        .env("KAFKA__TOPICS__DEAD_LETTER", &t.dead_letter)
        .env("KAFKA__TOPICS__TRIGGERS", &t.triggers)
        .env("KAFKA__TOPICS__CUSTOMER_FACTS", &t.customer_facts)
        .env("CLICKHOUSE__URL", &s.clickhouse.url)
        .env("CLICKHOUSE__DATABASE", &s.clickhouse.database)
        .env("HTTP__LISTEN", metrics)
        .env(
            "WATERMARK__IDLE_TIMEOUT_MS",
            s.watermark.idle_timeout_ms.to_string(),
        )
        .env("PIPELINE__TICK_MS", s.pipeline.tick_ms.to_string())
        .env(
            "PIPELINE__CHECKPOINT_INTERVAL_MS",
            s.pipeline.checkpoint_interval_ms.to_string(),
        )
        .env(
            "PIPELINE__MAX_BATCH_EVENTS",
            s.pipeline.max_batch_events.to_string(),
        )
        .env(
            "PIPELINE__WRITE_MIN_ROWS",
            s.pipeline.write_min_rows.to_string(),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Running)
        .expect("spawn shoplens run")
}

/// A server process of the test's own with its data under a temporary
/// directory, so that it can be stopped without disturbing other tests:
/// stopped with SIGTERM (as an operator would) on demand, killed and its
/// data removed on drop.
pub struct OwnProcess {
    /// Its data directory.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl OwnProcess {
    /// A fresh data directory named after `name`; nothing runs yet.
    pub fn new(name: &str) -> OwnProcess {
        let dir = std::env::temp_dir().join(unique(name));
        std::fs::create_dir_all(&dir).expect("data dir");
        OwnProcess { dir, child: None }
    }

    /// Spawns `command` as the running process.
    pub fn spawn(&mut self, command: &mut Command, what: &str) {
        self.child = Some(command.spawn().unwrap_or_else(|e| panic!("{what}: {e}")));
    }

    /// Stops the process with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            child.wait().expect("reaped");
        }
    }
}

impl Drop for OwnProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A ClickHouse server of the test's own.
pub struct OwnClickHouse {
    /// The server process.
    pub process: OwnProcess,
    http: u16,
}

impl OwnClickHouse {
    /// A server with a configuration of its own on free ports; not started.
    pub fn create() -> OwnClickHouse {
        let process = OwnProcess::new("clickhouse");
        let dir = &process.dir;
        std::fs::create_dir_all(dir.join("data")).expect("data dir");
        let (http, tcp) = (free_port(), free_port());
        let d = dir.display();
        let users = repo_path("deploy/local/clickhouse/users.xml");
        std::fs::write(
            dir.join("config.xml"),
            format!(
                r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <format_schema_path>{d}/format_schemas/</format_schema_path>
    <users_config>{}</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <timezone>UTC</timezone>
</yandex>
"#,
                users.display()
            ),
        )
        .expect("config");
        OwnClickHouse { process, http }
    }

    /// Its HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// Starts the server and waits until it answers.
    pub async fn start(&mut self) {
        let config = self.process.dir.join("config.xml");
        self.process.spawn(
            Command::new("clickhouse-server")
                .arg(format!("--config-file={}", config.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "clickhouse-server (deploy/local/stack.sh install)",
        );
        let addr = format!("127.0.0.1:{}", self.http);
        eventually(
            "own ClickHouse answers",
            Duration::from_secs(60),
            || async {
                match get(&addr, "/ping").await {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }
}

/// The broker binary: `SHOPLENS_TANSU` (the test command sets it), else the
/// one `deploy/local/stack.sh tansu` installs.
pub fn tansu() -> PathBuf {
    if let Some(path) = std::env::var_os("SHOPLENS_TANSU") {
        return PathBuf::from(path);
    }
    let out = Command::new(repo_path("deploy/local/stack.sh"))
        .arg("tansu")
        .stderr(Stdio::inherit())
        .output()
        .expect("deploy/local/stack.sh tansu");
    assert!(out.status.success(), "deploy/local/stack.sh tansu failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A Kafka-protocol broker of the test's own whose topics, offsets and
/// groups survive a restart (tansu with its SQLite storage engine).
pub struct OwnBroker {
    /// The broker process.
    pub process: OwnProcess,
    port: u16,
}

impl OwnBroker {
    /// A broker on a free port; not started.
    pub fn create() -> OwnBroker {
        OwnBroker {
            process: OwnProcess::new("broker"),
            port: free_port(),
        }
    }

    /// Its bootstrap address.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker on its data and waits until it accepts connections.
    pub async fn start(&mut self) {
        let url = format!("tcp://{}", self.address());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.process.dir.join("broker.log"))
            .expect("broker log");
        let dir = self.process.dir.clone();
        self.process.spawn(
            Command::new(tansu())
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                // Relative to the working directory: the data stays in `dir`.
                .args(["--storage-engine", "sqlite://tansu.db"])
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(log),
            "tansu broker (deploy/local/stack.sh install)",
        );
        let addr = self.address();
        eventually("own broker listens", Duration::from_secs(60), || async {
            tokio::net::TcpStream::connect(&addr)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await;
    }
}

/// A Prometheus server of the test's own, scraping one target every second.
/// Killed on drop.
pub struct Prometheus {
    child: Child,
    /// `host:port` of its HTTP API.
    pub addr: String,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts `prometheus` scraping `target` (`host:port`) at `/metrics`.
    pub fn start(target: &str) -> Prometheus {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("prometheus"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("prometheus.yml");
        let rules = repo_path("deploy/prometheus/rules/shoplens.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: shoplens\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
        .expect("write config");
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus must be installed (deploy/local/stack.sh install)");
        Prometheus { child, addr, dir }
    }

    /// Whether `promql` is a valid query here (status success), whatever it returns.
    pub async fn valid(&self, promql: &str) -> Result<(), String> {
        let path = shoplens::http_get::prometheus_query_path(promql);
        let (status, body) = shoplens::http_get::get(&self.addr, &path)
            .await
            .map_err(|e| e.to_string())?;
        if status == 200 && body.contains("\"status\":\"success\"") {
            Ok(())
        } else {
            Err(format!("{promql}: {status} {body}"))
        }
    }

    /// The value of an instant query that returns one sample.
    pub async fn query(&self, promql: &str) -> Result<f64, String> {
        let value = shoplens::summary::prometheus_value(&self.addr, promql).await?;
        value.parse().map_err(|_| format!("not a number: {value}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
