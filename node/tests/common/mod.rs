//! Starts the real `seedlog` binary on a free loopback port with a temporary data directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `seedlog node` process, killed (-9) when dropped.
pub struct Node {
    child: Child,
    /// `127.0.0.1:port` it listens on.
    pub address: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Node {
    /// Starts a node over `data_dir` with extra `--set` overrides; waits until it serves.
    pub fn start(data_dir: &Path, sets: &[&str]) -> Node {
        let node = Node::spawn(data_dir, sets);
        node.wait_ready();
        node
    }

    /// Starts a node and returns once it listens (a cluster node may not serve until its
    /// peers are up). `SEEDLOG_TEST_LOG` sets the node's log filter (default `warn`).
    pub fn spawn<S: AsRef<str>>(data_dir: &Path, sets: &[S]) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_seedlog"));
        command
            .arg("node")
            .arg("--set")
            .arg("listeners=127.0.0.1:0")
            .arg("--set")
            .arg(format!("log.dirs={}", data_dir.display()));
        for set in sets {
            command.arg("--set").arg(set.as_ref());
        }
        let log = std::env::var("SEEDLOG_TEST_LOG").unwrap_or_else(|_| "warn".to_owned());
        let mut child = command
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn seedlog node");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .expect("node printed its address")
            .expect("readable stdout");
        let address = line
            .rsplit(' ')
            .next()
            .expect("address at the end of the line")
            .to_owned();
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Node {
            child,
            address,
            data_dir: data_dir.to_owned(),
        }
    }

    /// Waits until the node serves: it answers Metadata, lists itself among the brokers at the
    /// address it listens on (a restarted node on a new port has re-registered) and names a
    /// controller (so topic changes are accepted), as Kafka's own tests wait for a broker to
    /// be registered before using it.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        loop {
            let seen = runtime.block_on(async {
                let client =
                    seedlog_net::Client::connect(&[self.address.as_str()], Default::default())
                        .await
                        .map_err(|e| e.to_string())?;
                let metadata = client.cached_metadata().await.map_err(|e| e.to_string())?;
                let listed = metadata
                    .brokers
                    .values()
                    .any(|b| format!("{}:{}", b.host, b.port) == self.address);
                if metadata.controller_id >= 0 && listed {
                    Ok(())
                } else {
                    Err(format!(
                        "controller {}, brokers {:?}",
                        metadata.controller_id,
                        metadata.brokers.keys().collect::<Vec<_>>()
                    ))
                }
            });
            let Err(last) = seen else { return };
            assert!(
                Instant::now() < deadline,
                "node at {} never became ready; last seen: {last}",
                self.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9, and reap.
    pub fn kill9(mut self) {
        self.kill9_in_place();
    }

    /// kill -9 and reap, keeping the handle (its address and data directory stay readable).
    pub fn kill9_in_place(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
