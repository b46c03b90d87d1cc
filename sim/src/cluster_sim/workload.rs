//! The simulation's side of the clients: creating them, running their steps with the shared
//! state they need, and carrying out what they ask (connections, bytes, wake-ups).

use super::client::{ClientOut, ClientSettings, Consumer, Ctx, Role};
use super::*;

impl ClusterSim {
    /// Creates the admin, the producers and the consumers, and lets each take its first step.
    pub(super) fn start_clients(&mut self) {
        let partitions = self.settings.partitions.clone();
        let admin = Role::Admin {
            remaining: self.params.topics.iter().map(|t| t.name.clone()).collect(),
        };
        self.add_client(admin);
        for _ in 0..self.params.producers {
            self.add_client(Role::Producer);
        }
        for _ in 0..self.params.consumers {
            let mut assigned: Vec<_> = partitions
                .iter()
                .filter(|_| self.rng.clients.chance(0.6))
                .cloned()
                .collect();
            if assigned.is_empty() {
                let i = self.rng.clients.below(partitions.len() as u64) as usize;
                assigned.push(partitions[i].clone());
            }
            self.add_client(Role::Consumer(Consumer::new(assigned)));
        }
    }

    /// Adds a client and runs its first step; answers its index.
    pub(super) fn add_client(&mut self, role: Role) -> usize {
        let index = self.clients.len();
        let client = Client::new(index, role, &mut self.rng.clients, self.now);
        self.clients.push(client);
        self.with_client(index, |client, ctx| client.step(ctx));
        index
    }

    /// Runs `f` on client `index` with the state it works with, then carries out its outputs.
    pub(super) fn with_client<R>(
        &mut self,
        index: usize,
        f: impl FnOnce(&mut Client, &mut Ctx) -> R,
    ) -> R {
        let mut ctx = Ctx {
            now: self.now,
            prng: &mut self.rng.clients,
            recorder: &mut self.recorder,
            checks: &mut self.checks,
            settings: &self.settings,
            next_conn: &mut self.next_conn,
            next_value: &mut self.next_value,
            report: &mut self.report,
            producing: self.phase == Phase::Safety,
            out: Vec::new(),
        };
        let result = f(&mut self.clients[index], &mut ctx);
        let outputs = std::mem::take(&mut ctx.out);
        for output in outputs {
            match output {
                ClientOut::Send {
                    conn,
                    node,
                    open,
                    frame,
                } => {
                    if open {
                        self.open_conn(conn, index, node);
                    }
                    self.trace
                        .add(&[self.now.0, 30, index as u64, conn, frame.len() as u64]);
                    self.send_stream(conn, true, StreamItem::Frame(frame));
                }
                ClientOut::Close { conn } => {
                    self.trace.add(&[self.now.0, 31, index as u64, conn]);
                    self.send_stream(conn, true, StreamItem::Close);
                }
                ClientOut::Wake { at, generation } => {
                    let client = index;
                    self.schedule(at, Event::ClientWake { client, generation });
                }
            }
        }
        result
    }

    pub(super) fn on_client_wake(&mut self, client: usize, generation: u64) {
        self.with_client(client, |c, ctx| c.on_wake(generation, ctx));
    }
}

/// The settings of a run's clients.
pub(super) fn settings(params: &ClusterSimParams) -> ClientSettings {
    ClientSettings::new(params)
}
