//! The harness's private network: one Linux network namespace per node, a bridge between them,
//! and the host (where the Kafka clients run) attached to the same bridge.
//!
//! ```text
//!  host namespace                 sljep-br                       sljep-nK (K = 1..=5)
//!  sljep-h  S.254 ─── veth ─── host ──┐
//!                                     br0 ── nodeK ─── veth ─── eth0  S.K
//! ```
//!
//! `S` is the first of a few private /24s (10.213.77.0/24, then 10.213.78.0/24, ...) that
//! overlaps nothing in the host's addresses or routes, so the harness only ever uses addresses
//! it created itself. Node `K` is `S.K`, the host end is `S.254`. Every object carries
//! [`PREFIX`]: the namespaces `sljep-br` and `sljep-nK`, and the host veth `sljep-h`; the rest
//! lives inside those namespaces and disappears with them. [`clean_leftovers`] removes what a
//! killed harness left behind.
//!
//! Everything is done by running `ip` and `tc` (iproute2); the calls block for a few
//! milliseconds each.
//!
//! **Partitions** drop packets inside the bridge, so a sender sees a successful transmit and the
//! packet is lost in the network, as on a real cut link. Each bridge port `nodeK` (the way into
//! node K) has an `htb` root on egress with a pass class `1:1` (the default) and a drop class
//! `1:2` whose only queue is `pfifo limit 0`. Blocking "from A to K" is one `u32` filter on port
//! `nodeK` (preference `10 + A`) that sends IPv4 packets with source address `S.A` to `1:2`.
//! Only IPv4 between nodes is matched: traffic from the host and ARP always pass, so clients stay
//! connected to every node (Jepsen style) and neighbour entries stay valid.
//! [`Network::partition`] reads the filters the kernel holds, adds the missing ones first and
//! then deletes the stale ones (one `tc -batch`), so a pair blocked before and after a change
//! never flows in between.
//!
//! **Netem** works on each node's `eth0` egress, before the bridge: an `htb` root whose default
//! class `1:2` carries traffic to the host, ARP and anything else, while a `u32` filter sends
//! IPv4 to the other nodes to class `1:1`. That class's queue is a plain `pfifo` (handle `10:`)
//! until [`Network::set_netem`] replaces it with `netem` (handle `11:`); [`Network::clear_netem`]
//! puts the `pfifo` back. Netem therefore delays, drops and duplicates node-to-node traffic only,
//! and since partition drops happen later, at the bridge, a blocked pair stays 100 % blocked
//! whatever netem does.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// The largest cluster the network supports.
pub const NODES_MAX: usize = 5;

/// Everything this harness creates carries this prefix (namespaces `sljep-br`, `sljep-n1`..,
/// host veth `sljep-h`).
pub const PREFIX: &str = "sljep";

/// The /24s tried in order; the first one that overlaps nothing on the host is used.
const SUBNETS: [[u8; 3]; 5] = [
    [10, 213, 77],
    [10, 213, 78],
    [10, 213, 79],
    [172, 30, 213],
    [192, 168, 213],
];
/// Last octet of the host end's address.
const HOST_OCTET: u8 = 254;
/// The bridge inside the bridge namespace.
const BRIDGE: &str = "br0";
/// A node's interface inside its namespace.
const NODE_IFACE: &str = "eth0";
/// The bridge-side end of the host veth.
const HOST_PORT: &str = "host";
/// Rate of every htb class: far above what the harness sends, so the classes sort traffic but
/// never shape it.
const CLASS_RATE: &str = "10gbit";
/// Set explicitly because htb's derived quantum at this rate is out of range and makes the
/// kernel log a warning for every class.
const CLASS_QUANTUM: &str = "60000";
/// A partition filter on port `nodeB` blocking node A has preference `PREF_BASE + A`, so each
/// blocked pair can be found and deleted on its own.
const PREF_BASE: usize = 10;
/// Handle of the pass-through queue under a node's class `1:1`. It differs from
/// [`NETEM_HANDLE`] because the kernel refuses to change a queue's kind under the same handle.
const PASS_HANDLE: &str = "10:";
/// Handle of the netem queue under a node's class `1:1`.
const NETEM_HANDLE: &str = "11:";
/// Netem's packet limit; its default (1000) would drop packets of its own under long delays.
const NETEM_LIMIT: &str = "100000";
/// How long [`Network::create`] waits for the links to report carrier.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// Where `ip` and `tc` usually live when `PATH` (e.g. under sudo) does not name them.
const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Checks that this machine can run the harness: root, `ip`, `tc`, network namespaces, veth
/// pairs, bridges, the `htb`/`u32`/`pfifo` traffic control that partitions use, and `netem`.
///
/// The kernel checks run in a throwaway namespace (`sljep-probe-<pid>`) that is removed again.
///
/// # Errors
///
/// One human sentence per missing thing, joined by spaces.
pub fn preflight() -> Result<(), String> {
    check_machine(true)
}

/// [`preflight`] without the netem check: everything but [`Network::set_netem`] works when this
/// succeeds (some kernels, e.g. minimal VM kernels, ship without `sch_netem`).
///
/// # Errors
///
/// One human sentence per missing thing, joined by spaces.
pub fn preflight_without_netem() -> Result<(), String> {
    check_machine(false)
}

/// Delay, jitter, loss and duplication applied by netem to node-to-node traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetemSpec {
    /// Added one-way delay in milliseconds.
    pub delay_ms: u32,
    /// Random variation of the delay in milliseconds (uniform, ±); reorders packets.
    pub jitter_ms: u32,
    /// Share of packets dropped, 0 to 100.
    pub loss_percent: f64,
    /// Share of packets sent twice, 0 to 100.
    pub duplicate_percent: f64,
}

impl NetemSpec {
    fn check(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("loss_percent", self.loss_percent),
            ("duplicate_percent", self.duplicate_percent),
        ] {
            if !(0.0..=100.0).contains(&value) {
                bail!("netem {name} must be between 0 and 100, not {value}");
            }
        }
        Ok(())
    }

    /// The `tc` words that describe this spec as a queue (`netem limit .. delay ..`).
    fn qdisc_args(&self) -> Vec<String> {
        let mut args = vec![
            "netem".to_string(),
            "limit".to_string(),
            NETEM_LIMIT.to_string(),
            "delay".to_string(),
            format!("{}ms", self.delay_ms),
        ];
        if self.jitter_ms > 0 {
            args.push(format!("{}ms", self.jitter_ms));
        }
        if self.loss_percent > 0.0 {
            args.push("loss".to_string());
            args.push(format!("{}%", self.loss_percent));
        }
        if self.duplicate_percent > 0.0 {
            args.push("duplicate".to_string());
            args.push(format!("{}%", self.duplicate_percent));
        }
        args
    }
}

/// The namespaces, veths and bridge of one harness run; see the module documentation.
///
/// Dropping it removes everything (see [`Network::destroy`]).
#[derive(Debug)]
pub struct Network {
    names: Names,
    nodes: usize,
    subnet: Subnet,
    /// Serializes partition and netem changes: each reads kernel state and then changes it.
    faults: Mutex<()>,
    /// Set once everything is known to be gone, so later calls (and drop) do no work.
    destroyed: bool,
}

impl Network {
    /// Creates the bridge namespace and bridge, one namespace per node (ids `1..=nodes`) with
    /// `lo` up and an `eth0` veth into the bridge, and the host veth; assigns the addresses.
    ///
    /// # Errors
    ///
    /// If `nodes` is not in `1..=NODES_MAX`; if objects with [`PREFIX`] already exist (run
    /// `seedlog jepsen clean`); if every candidate subnet already appears in the host's
    /// addresses or routes; or if a command fails, in which case everything made so far is
    /// removed first.
    pub fn create(nodes: usize) -> anyhow::Result<Network> {
        Network::create_with_prefix(PREFIX, nodes)
    }

    fn create_with_prefix(prefix: &str, nodes: usize) -> anyhow::Result<Network> {
        if !(1..=NODES_MAX).contains(&nodes) {
            bail!("a harness network has 1 to {NODES_MAX} nodes, not {nodes}");
        }
        let names = Names::new(prefix);
        let leftovers: Vec<String> = leftover_names(&names)?
            .into_iter()
            .filter(|name| !names.is_probe(name))
            .collect();
        if !leftovers.is_empty() {
            bail!(
                "network objects from an earlier harness run still exist ({}); run `seedlog \
                 jepsen clean` to remove them",
                leftovers.join(", ")
            );
        }
        let in_use = format!(
            "{}\n{}",
            ip(&["-4", "-o", "addr", "show"])?,
            ip(&["-4", "-o", "route", "show", "table", "all"])?
        );
        let Some(subnet) = choose_subnet(&in_use) else {
            let candidates: Vec<String> = SUBNETS
                .iter()
                .map(|&octets| Subnet(octets).cidr())
                .collect();
            bail!(
                "every subnet the harness may use ({}) already appears in this host's addresses \
                 or routes; the harness only uses addresses it created",
                candidates.join(", ")
            );
        };
        let mut network = Network {
            names,
            nodes,
            subnet,
            faults: Mutex::new(()),
            destroyed: false,
        };
        if let Err(error) = network.build() {
            let failures = network.destroy();
            if failures.is_empty() {
                return Err(error);
            }
            return Err(anyhow!(
                "{error:#}; removing the partial network also failed: {}",
                failures.join("; ")
            ));
        }
        Ok(network)
    }

    fn build(&self) -> anyhow::Result<()> {
        let bridge_ns = self.names.bridge_ns();
        ip(&["netns", "add", &bridge_ns])?;
        ip(&[
            "-n", &bridge_ns, "link", "add", "name", BRIDGE, "type", "bridge",
        ])?;
        ip(&["-n", &bridge_ns, "link", "set", "dev", BRIDGE, "up"])?;
        for node in 1..=self.nodes {
            let ns = self.names.node_ns(node);
            let port = node_port(node);
            let cidr = format!("{}/24", self.node_addr(node));
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
            // Both ends are created directly in their namespaces, so no name is ever taken in
            // the host namespace (which usually has an eth0 of its own).
            ip(&[
                "link", "add", "name", NODE_IFACE, "netns", &ns, "type", "veth", "peer", "name",
                &port, "netns", &bridge_ns,
            ])?;
            attach_to_bridge(&bridge_ns, &port)?;
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", NODE_IFACE])?;
            ip(&["-n", &ns, "link", "set", "dev", NODE_IFACE, "up"])?;
            tc_batch(&ns, &self.node_qdisc_lines())?;
            tc_batch(&bridge_ns, &port_qdisc_lines(&port))?;
        }
        let host_veth = self.names.host_veth();
        let host_cidr = format!("{}/24", self.host_addr());
        ip(&[
            "link", "add", "name", &host_veth, "type", "veth", "peer", "name", HOST_PORT, "netns",
            &bridge_ns,
        ])?;
        attach_to_bridge(&bridge_ns, HOST_PORT)?;
        ip(&["addr", "add", &host_cidr, "dev", &host_veth])?;
        ip(&["link", "set", "dev", &host_veth, "up"])?;
        self.wait_for_carrier()
    }

    /// The queues on a node's `eth0`: node-bound IPv4 to class `1:1` (netem's place), the rest
    /// to the default class `1:2`. The host filter comes first because the host's address is
    /// inside the node subnet.
    fn node_qdisc_lines(&self) -> Vec<String> {
        let dev = NODE_IFACE;
        vec![
            format!("qdisc add dev {dev} root handle 1: htb default 2"),
            htb_class_line(dev, "1:1"),
            htb_class_line(dev, "1:2"),
            format!("qdisc add dev {dev} parent 1:1 handle {PASS_HANDLE} pfifo limit 1000"),
            format!(
                "filter add dev {dev} parent 1: protocol ip pref 1 u32 match ip dst {}/32 \
                 flowid 1:2",
                self.host_addr()
            ),
            format!(
                "filter add dev {dev} parent 1: protocol ip pref 2 u32 match ip dst {} flowid 1:1",
                self.subnet.cidr()
            ),
        ]
    }

    fn wait_for_carrier(&self) -> anyhow::Result<()> {
        let mut links: Vec<(Option<String>, String)> = (1..=self.nodes)
            .map(|node| (Some(self.names.node_ns(node)), NODE_IFACE.to_string()))
            .collect();
        links.push((None, self.names.host_veth()));
        let deadline = Instant::now() + LINK_UP_TIMEOUT;
        for (ns, dev) in links {
            let mut args: Vec<&str> = Vec::new();
            if let Some(ns) = &ns {
                args.extend(["-n", ns.as_str()]);
            }
            args.extend(["-o", "link", "show", "dev", dev.as_str()]);
            loop {
                let state = ip(&args)?;
                if state.contains("LOWER_UP") {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "{dev} in {} has no carrier after {LINK_UP_TIMEOUT:?}: {}",
                        ns.as_deref().unwrap_or("the host namespace"),
                        state.trim()
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// The number of nodes; their ids are `1..=nodes()`.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The address of `node` (`S.node`).
    ///
    /// # Panics
    ///
    /// If `node` is not in `1..=nodes()`.
    pub fn node_addr(&self, node: usize) -> Ipv4Addr {
        self.expect_node(node);
        self.subnet.addr(node as u8)
    }

    /// The address of the host end (`S.254`), where the harness's clients connect from.
    pub fn host_addr(&self) -> Ipv4Addr {
        self.subnet.addr(HOST_OCTET)
    }

    /// The name of `node`'s namespace (`sljep-n<node>`).
    ///
    /// # Panics
    ///
    /// If `node` is not in `1..=nodes()`.
    pub fn namespace(&self, node: usize) -> String {
        self.expect_node(node);
        self.names.node_ns(node)
    }

    /// `ip netns exec <namespace> <program>`, ready for the program's arguments.
    ///
    /// Without `-b`, `ip netns exec` enters the namespace and then `execvp`s the program in the
    /// same process, so the spawned child's pid is the program's pid: signals sent to
    /// [`std::process::Child::id`] reach the program itself. The program also runs in a private
    /// mount namespace where `/sys` shows the node's network devices.
    ///
    /// # Panics
    ///
    /// If `node` is not in `1..=nodes()`.
    pub fn command_in(&self, node: usize, program: &Path) -> Command {
        let namespace = self.namespace(node);
        let mut command = Command::new(tool_or_name("ip"));
        command.args(["netns", "exec", &namespace]).arg(program);
        command
    }

    /// Replaces the current partition: packets from `a` to `b` are dropped for each directed
    /// pair `(a, b)` of node ids, every other pair flows. Empty means healed. Only node-to-node
    /// traffic is affected: the host (clients) always reaches every node and back.
    ///
    /// # Errors
    ///
    /// If a pair names an unknown node or a node twice, or `tc` fails (the message carries its
    /// input and output). A failed change may be partly applied; the next call starts from
    /// what the kernel holds, so it corrects that.
    pub fn partition(&self, blocked: &[(usize, usize)]) -> anyhow::Result<()> {
        let mut wanted = BTreeSet::new();
        for &(from, to) in blocked {
            self.check_node(from)?;
            self.check_node(to)?;
            if from == to {
                bail!("cannot block node {from} from itself");
            }
            wanted.insert((from, to));
        }
        let _serial = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let bridge_ns = self.names.bridge_ns();
        let mut current = BTreeSet::new();
        for to in 1..=self.nodes {
            let filters = tc(&[
                "-n",
                &bridge_ns,
                "filter",
                "show",
                "dev",
                &node_port(to),
                "parent",
                "1:",
            ])?;
            for pref in filter_prefs(&filters) {
                if let Some(from) = pref.checked_sub(PREF_BASE).filter(|from| *from >= 1) {
                    current.insert((from, to));
                }
            }
        }
        let mut lines: Vec<String> = wanted
            .difference(&current)
            .map(|&(from, to)| {
                format!(
                    "filter add dev {} parent 1: protocol ip pref {} u32 match ip src {}/32 \
                     flowid 1:2",
                    node_port(to),
                    PREF_BASE + from,
                    self.node_addr(from)
                )
            })
            .collect();
        lines.extend(current.difference(&wanted).map(|&(from, to)| {
            format!(
                "filter del dev {} parent 1: protocol ip pref {}",
                node_port(to),
                PREF_BASE + from
            )
        }));
        if lines.is_empty() {
            return Ok(());
        }
        tc_batch(&bridge_ns, &lines).context("changing the partition")
    }

    /// Lets every node reach every other node again (`partition(&[])`).
    ///
    /// # Errors
    ///
    /// As [`Network::partition`].
    pub fn heal(&self) -> anyhow::Result<()> {
        self.partition(&[])
    }

    /// Applies `spec` to node-to-node traffic leaving `node`, or every node when `None`,
    /// replacing any earlier spec there. Traffic to the host is never affected, and a partition
    /// still drops everything it blocks.
    ///
    /// # Errors
    ///
    /// If the node is unknown, the percentages are outside 0..=100, or `tc` fails (for example
    /// because the kernel lacks `sch_netem`; [`preflight`] reports that). With `None`, nodes
    /// before the failing one keep the new spec; [`Network::clear_netem`] resets all.
    pub fn set_netem(&self, node: Option<usize>, spec: NetemSpec) -> anyhow::Result<()> {
        spec.check()?;
        let qdisc = spec.qdisc_args();
        for target in self.targets(node)? {
            self.replace_node_queue(target, NETEM_HANDLE, &qdisc)
                .with_context(|| format!("applying netem {spec:?} to node {target}"))?;
        }
        Ok(())
    }

    /// Removes netem from every node.
    ///
    /// # Errors
    ///
    /// If `tc` fails.
    pub fn clear_netem(&self) -> anyhow::Result<()> {
        let pass = ["pfifo".to_string(), "limit".to_string(), "1000".to_string()];
        for node in 1..=self.nodes {
            self.replace_node_queue(node, PASS_HANDLE, &pass)
                .with_context(|| format!("removing netem from node {node}"))?;
        }
        Ok(())
    }

    /// Puts `qdisc` (tc words) under class `1:1` of `node`'s `eth0`, the class that carries
    /// node-to-node traffic.
    fn replace_node_queue(
        &self,
        node: usize,
        handle: &str,
        qdisc: &[String],
    ) -> anyhow::Result<()> {
        let _serial = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let ns = self.names.node_ns(node);
        let mut args: Vec<&str> = vec![
            "-n", &ns, "qdisc", "replace", "dev", NODE_IFACE, "parent", "1:1", "handle", handle,
        ];
        args.extend(qdisc.iter().map(String::as_str));
        tc(&args).map(drop)
    }

    /// Removes everything this network created: kills any process still inside its namespaces
    /// (nothing can use a node's network once it is gone, and a live process would keep the
    /// namespace alive), then deletes the host veth and the namespaces, which takes the bridge
    /// and the other veths with them.
    ///
    /// Idempotent and best effort: it carries on past failures and returns a description of
    /// each; empty means everything is gone.
    pub fn destroy(&mut self) -> Vec<String> {
        if self.destroyed {
            return Vec::new();
        }
        let mut namespaces: Vec<String> = (1..=self.nodes)
            .map(|node| self.names.node_ns(node))
            .collect();
        namespaces.push(self.names.bridge_ns());
        let (_, failures) = remove(&[self.names.host_veth()], &namespaces);
        self.destroyed = failures.is_empty();
        failures
    }

    fn targets(&self, node: Option<usize>) -> anyhow::Result<Vec<usize>> {
        match node {
            Some(node) => {
                self.check_node(node)?;
                Ok(vec![node])
            }
            None => Ok((1..=self.nodes).collect()),
        }
    }

    fn check_node(&self, node: usize) -> anyhow::Result<()> {
        if !(1..=self.nodes).contains(&node) {
            bail!("no node {node}: node ids are 1 to {}", self.nodes);
        }
        Ok(())
    }

    fn expect_node(&self, node: usize) {
        assert!(
            (1..=self.nodes).contains(&node),
            "no node {node}: node ids are 1 to {}",
            self.nodes
        );
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = self.destroy();
    }
}

/// Removes every leftover object carrying [`PREFIX`] (namespaces, host veths), e.g. after a
/// harness was killed, and kills the processes still running inside those namespaces (they are
/// the harness's nodes). Returns what it removed. Never touches anything without the prefix.
///
/// # Errors
///
/// If the objects cannot be listed, or some could not be removed (the message lists those and
/// what was removed).
pub fn clean_leftovers() -> anyhow::Result<Vec<String>> {
    clean_leftovers_with_prefix(PREFIX)
}

fn clean_leftovers_with_prefix(prefix: &str) -> anyhow::Result<Vec<String>> {
    let names = Names::new(prefix);
    let links: Vec<String> = host_links()?
        .into_iter()
        .filter(|name| names.owns(name))
        .collect();
    let namespaces: Vec<String> = namespaces()?
        .into_iter()
        .filter(|name| names.owns(name))
        .collect();
    let (removed, failures) = remove(&links, &namespaces);
    if !failures.is_empty() {
        bail!(
            "could not remove every leftover: {} (removed: {})",
            failures.join("; "),
            if removed.is_empty() {
                "nothing".to_string()
            } else {
                removed.join(", ")
            }
        );
    }
    Ok(removed)
}

/// The names of one network's objects. Tests use their own prefix so they never touch a real
/// harness run on the same machine.
#[derive(Clone, Debug)]
struct Names {
    prefix: String,
}

impl Names {
    fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }

    fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    fn node_ns(&self, node: usize) -> String {
        format!("{}-n{node}", self.prefix)
    }

    fn host_veth(&self) -> String {
        format!("{}-h", self.prefix)
    }

    fn probe_ns(&self) -> String {
        format!("{}-probe-{}", self.prefix, std::process::id())
    }

    fn owns(&self, name: &str) -> bool {
        name.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// A preflight's namespace: it holds nothing outside itself, so it does not stop a network
    /// from being created.
    fn is_probe(&self, name: &str) -> bool {
        name.starts_with(&format!("{}-probe-", self.prefix))
    }
}

/// A /24 given by its first three octets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Subnet([u8; 3]);

impl Subnet {
    fn addr(self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.0;
        Ipv4Addr::new(a, b, c, last)
    }

    fn cidr(self) -> String {
        format!("{}/24", self.addr(0))
    }

    /// Whether this /24 and `addr/len` share an address. A /0 (a default route) is ignored:
    /// it covers everything yet says nothing about which addresses are in use.
    fn overlaps(self, addr: Ipv4Addr, len: u32) -> bool {
        if len == 0 {
            return false;
        }
        let common = len.min(24);
        let mask = u32::MAX << (32 - common);
        u32::from(addr) & mask == u32::from(self.addr(0)) & mask
    }
}

/// The first candidate subnet that no IPv4 address or prefix in `in_use` (the output of
/// `ip -4 addr` and `ip -4 route`) touches. Every token that parses as an address or prefix
/// counts, gateways and source addresses included, which errs on the side of not colliding.
fn choose_subnet(in_use: &str) -> Option<Subnet> {
    let used: Vec<(Ipv4Addr, u32)> = in_use.split_whitespace().filter_map(parse_prefix).collect();
    SUBNETS
        .iter()
        .map(|&octets| Subnet(octets))
        .find(|subnet| !used.iter().any(|&(addr, len)| subnet.overlaps(addr, len)))
}

fn parse_prefix(token: &str) -> Option<(Ipv4Addr, u32)> {
    let (addr, len) = match token.split_once('/') {
        Some((addr, len)) => (addr, len.parse().ok()?),
        None => (token, 32),
    };
    if len > 32 {
        return None;
    }
    Some((addr.parse().ok()?, len))
}

/// The bridge-side end of `node`'s veth, inside the bridge namespace.
fn node_port(node: usize) -> String {
    format!("node{node}")
}

fn attach_to_bridge(bridge_ns: &str, port: &str) -> anyhow::Result<()> {
    ip(&[
        "-n", bridge_ns, "link", "set", "dev", port, "master", BRIDGE,
    ])?;
    ip(&["-n", bridge_ns, "link", "set", "dev", port, "up"])?;
    Ok(())
}

fn htb_class_line(dev: &str, class: &str) -> String {
    format!(
        "class add dev {dev} parent 1: classid {class} htb rate {CLASS_RATE} quantum \
         {CLASS_QUANTUM}"
    )
}

/// The queues on a bridge port: class `1:1` passes (default), class `1:2` drops everything
/// (`pfifo limit 0` has no room for a single packet). Partition filters pick `1:2`.
fn port_qdisc_lines(port: &str) -> Vec<String> {
    vec![
        format!("qdisc add dev {port} root handle 1: htb default 1"),
        htb_class_line(port, "1:1"),
        htb_class_line(port, "1:2"),
        format!("qdisc add dev {port} parent 1:2 handle 20: pfifo limit 0"),
    ]
}

/// The preferences of the filters in `tc filter show` output.
fn filter_prefs(output: &str) -> BTreeSet<usize> {
    let mut prefs = BTreeSet::new();
    let mut words = output.split_whitespace();
    while let Some(word) = words.next() {
        if word == "pref" {
            if let Some(pref) = words.next().and_then(|value| value.parse().ok()) {
                prefs.insert(pref);
            }
        }
    }
    prefs
}

/// Names of the network namespaces `ip netns` knows (`name` or `name (id: N)` per line).
fn parse_namespaces(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Interface names in `ip -o link show` output (`7: sljep-h@if3: <...> ...`).
fn parse_links(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect()
}

fn namespaces() -> anyhow::Result<Vec<String>> {
    Ok(parse_namespaces(&ip(&["netns", "list"])?))
}

fn host_links() -> anyhow::Result<Vec<String>> {
    Ok(parse_links(&ip(&["-o", "link", "show"])?))
}

/// Every object carrying `names`' prefix in the host namespace and the namespace list.
fn leftover_names(names: &Names) -> anyhow::Result<Vec<String>> {
    let mut found: Vec<String> = namespaces()?
        .into_iter()
        .filter(|name| names.owns(name))
        .collect();
    found.extend(host_links()?.into_iter().filter(|name| names.owns(name)));
    Ok(found)
}

/// Deletes those of `links` (host namespace) and `namespaces` that exist, killing the processes
/// inside each namespace first. Returns (what was removed, what failed).
///
/// Host links go first: deleting a link is synchronous, while a deleted namespace's devices
/// vanish only once the kernel has torn the namespace down.
fn remove(links: &[String], namespaces_to_remove: &[String]) -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    match host_links() {
        Ok(existing) => {
            for link in links.iter().filter(|link| existing.contains(link)) {
                match ip(&["link", "del", "dev", link]) {
                    Ok(_) => removed.push(link.clone()),
                    Err(error) => failures.push(format!("{error:#}")),
                }
            }
        }
        Err(error) => failures.push(format!("{error:#}")),
    }
    let existing = match namespaces() {
        Ok(existing) => existing,
        Err(error) => {
            failures.push(format!("{error:#}"));
            return (removed, failures);
        }
    };
    for ns in namespaces_to_remove
        .iter()
        .filter(|ns| existing.contains(ns))
    {
        match ip(&["netns", "pids", ns]) {
            Ok(pids) => {
                for pid in pids.split_whitespace() {
                    match pid.parse::<i32>() {
                        Ok(raw) => match kill(Pid::from_raw(raw), Signal::SIGKILL) {
                            Ok(()) | Err(nix::errno::Errno::ESRCH) => {
                                removed.push(format!("process {pid} in {ns}"));
                            }
                            Err(errno) => failures.push(format!(
                                "could not kill process {pid} in {ns}: {}",
                                errno.desc()
                            )),
                        },
                        Err(_) => failures.push(format!(
                            "`ip netns pids {ns}` printed {pid:?}, which is not a pid"
                        )),
                    }
                }
            }
            Err(error) => failures.push(format!("{error:#}")),
        }
        match ip(&["netns", "del", ns]) {
            Ok(_) => removed.push(ns.clone()),
            Err(error) => failures.push(format!("{error:#}")),
        }
    }
    (removed, failures)
}

fn check_machine(netem: bool) -> Result<(), String> {
    let mut problems = Vec::new();
    match effective_uid() {
        Some(0) => {}
        Some(uid) => problems.push(format!(
            "The harness must run as root (the effective uid is {uid}): it creates network \
             namespaces, veth pairs and traffic control rules."
        )),
        None => problems.push(
            "Cannot tell whether this process is root: /proc/self/status has no readable Uid \
             line."
                .to_string(),
        ),
    }
    for (tool, package) in [("ip", "iproute2"), ("tc", "iproute2")] {
        match find_program(tool) {
            None => problems.push(sentence(&format!(
                "`{tool}` is not installed (it comes with {package}; looked in PATH and {})",
                SYSTEM_DIRS.join(", ")
            ))),
            Some(_) => {
                if let Err(error) = run(tool, &["-V"], None) {
                    problems.push(sentence(&format!("`{tool}` does not work: {error:#}")));
                }
            }
        }
    }
    if problems.is_empty() {
        if let Err(problem) = probe_kernel(netem) {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(" "))
    }
}

/// Tries, in a throwaway namespace, every kernel feature the network needs. Returns the first
/// missing one as a sentence (the later checks depend on the earlier ones).
fn probe_kernel(netem: bool) -> Result<(), String> {
    let names = Names::new(PREFIX);
    let ns = names.probe_ns();
    if namespaces().is_ok_and(|existing| existing.contains(&ns)) {
        let _ = ip(&["netns", "del", &ns]);
    }
    if let Err(error) = ip(&["netns", "add", &ns]) {
        return Err(sentence(&format!(
            "Network namespaces cannot be created here: {error:#}"
        )));
    }
    let result = probe_in_namespace(&ns, netem);
    let cleanup = ip(&["netns", "del", &ns]);
    result?;
    cleanup.map(drop).map_err(|error| {
        sentence(&format!(
            "The probe namespace could not be removed (`seedlog jepsen clean` removes it): \
             {error:#}"
        ))
    })
}

fn probe_in_namespace(ns: &str, netem: bool) -> Result<(), String> {
    let failed = |what: &str, error: anyhow::Error| sentence(&format!("{what}: {error:#}"));
    match find_program("true") {
        Some(program) => {
            let status = Command::new(tool_or_name("ip"))
                .args(["netns", "exec", ns])
                .arg(program)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output();
            match status {
                Ok(output) if output.status.success() => {}
                Ok(output) => {
                    return Err(sentence(&format!(
                        "Programs cannot be started inside a network namespace (`ip netns exec \
                         {ns} true` failed with {}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    )))
                }
                Err(error) => {
                    return Err(sentence(&format!(
                        "Programs cannot be started inside a network namespace: {error}"
                    )))
                }
            }
        }
        None => {
            return Err("The `true` program is missing, so `ip netns exec` cannot be tried.".into())
        }
    }
    ip(&[
        "-n", ns, "link", "add", "name", "probe0", "type", "veth", "peer", "name", "probe1",
    ])
    .map_err(|error| failed("The kernel cannot create veth pairs (CONFIG_VETH)", error))?;
    ip(&["-n", ns, "link", "add", "name", "probebr", "type", "bridge"])
        .and_then(|_| {
            ip(&[
                "-n", ns, "link", "set", "dev", "probe1", "master", "probebr",
            ])
        })
        .map_err(|error| failed("The kernel cannot create bridges (CONFIG_BRIDGE)", error))?;
    let mut lines = port_qdisc_lines("probe0");
    lines.push(
        "filter add dev probe0 parent 1: protocol ip pref 11 u32 match ip src 10.0.0.1/32 \
         flowid 1:2"
            .to_string(),
    );
    tc_batch(ns, &lines).map_err(|error| {
        failed(
            "The kernel lacks the htb queueing discipline, the pfifo queue or the u32 classifier \
             that partitions use (CONFIG_NET_SCH_HTB, CONFIG_NET_SCH_FIFO, CONFIG_NET_CLS_U32)",
            error,
        )
    })?;
    if netem {
        let spec = NetemSpec {
            delay_ms: 1,
            jitter_ms: 1,
            loss_percent: 1.0,
            duplicate_percent: 1.0,
        };
        let mut args = vec![
            "-n",
            ns,
            "qdisc",
            "replace",
            "dev",
            "probe0",
            "parent",
            "1:1",
            "handle",
            NETEM_HANDLE,
        ];
        let qdisc = spec.qdisc_args();
        args.extend(qdisc.iter().map(String::as_str));
        tc(&args).map_err(|error| {
            failed(
                "The kernel has no netem queueing discipline (CONFIG_NET_SCH_NETEM), which the \
                 delay, loss and duplication faults need",
                error,
            )
        })?;
    }
    Ok(())
}

/// `text` as one sentence: trailing whitespace and full stops replaced by a single full stop.
fn sentence(text: &str) -> String {
    format!("{}.", text.trim_end().trim_end_matches('.'))
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// `name` in `PATH` or the usual system directories (which `PATH` may lack, e.g. under sudo).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `name`'s full path if found, else the bare name, so a missing tool surfaces as a failed spawn
/// that names it.
fn tool_or_name(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| PathBuf::from(name))
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args, None)
}

fn tc(args: &[&str]) -> anyhow::Result<String> {
    run("tc", args, None)
}

/// Runs `lines` as one `tc -batch` inside `ns`; tc stops at the first failing line.
fn tc_batch(ns: &str, lines: &[String]) -> anyhow::Result<()> {
    let input = lines.join("\n") + "\n";
    run("tc", &["-n", ns, "-batch", "-"], Some(&input)).map(drop)
}

/// Runs `program` with `args` (and `input` on stdin); returns stdout. The error names the
/// command line, its exit status, stderr, and the input if there was one.
fn run(program: &str, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
    let line = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(tool_or_name(program))
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{line}`"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .with_context(|| format!("could not write the input of `{line}`"))?;
    }
    let output = child
        .wait_with_output()
        .with_context(|| format!("could not wait for `{line}`"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut message = format!("`{line}` failed ({}): {}", output.status, stderr.trim());
        if let Some(text) = input {
            message.push_str("\ninput:\n");
            message.push_str(text.trim_end());
        }
        bail!(message);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::sync::MutexGuard;

    /// Test networks use their own prefixes so a real harness run on the same machine is never
    /// disturbed (nor disturbs them).
    const TEST_PREFIX: &str = "sljt";
    const OTHER_TEST_PREFIX: &str = "sljq";

    /// Namespaces and host links are global: namespace tests run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    /// A closed port: datagrams to it count in the receiver's `Udp: NoPorts`.
    const CLOSED_PORT: u16 = 9;
    /// How long a datagram gets to arrive; veth delivery takes microseconds.
    const SETTLE: Duration = Duration::from_millis(200);

    struct Env {
        _serial: MutexGuard<'static, ()>,
        bash: PathBuf,
    }

    /// Takes the test lock and checks the machine; `None` (after printing why) when the test
    /// cannot run here. Removes test leftovers of an interrupted earlier test run.
    fn namespaces_or_skip(needs_netem: bool) -> Option<Env> {
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let check = if needs_netem {
            preflight()
        } else {
            preflight_without_netem()
        };
        if let Err(reason) = check {
            println!("skipped: {reason}");
            return None;
        }
        let Some(bash) = find_program("bash") else {
            println!("skipped: bash is needed to send test datagrams from inside a namespace");
            return None;
        };
        for prefix in [TEST_PREFIX, OTHER_TEST_PREFIX] {
            clean_leftovers_with_prefix(prefix).expect("removing earlier test leftovers");
        }
        Some(Env {
            _serial: serial,
            bash,
        })
    }

    #[derive(Clone, Copy, Debug)]
    enum End {
        Host,
        Node(usize),
    }
    use End::{Host, Node};

    fn udp_no_ports(env: &Env, net: &Network, node: usize) -> u64 {
        let output = net
            .command_in(node, &env.bash)
            .args(["-c", "cat /proc/net/snmp"])
            .output()
            .expect("reading /proc/net/snmp");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut udp = text.lines().filter(|line| line.starts_with("Udp:"));
        let header: Vec<&str> = udp.next().expect("Udp header").split_whitespace().collect();
        let values: Vec<&str> = udp.next().expect("Udp values").split_whitespace().collect();
        let column = header
            .iter()
            .position(|&name| name == "NoPorts")
            .expect("NoPorts");
        values[column].parse().expect("NoPorts value")
    }

    fn send(env: &Env, net: &Network, from: End, to: Ipv4Addr, port: u16) {
        match from {
            Host => {
                let socket = UdpSocket::bind((net.host_addr(), 0)).expect("host socket");
                for _ in 0..3 {
                    let _ = socket.send_to(b"x", (to, port));
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Node(node) => {
                let script = format!(
                    "for i in 1 2 3; do echo x 2>/dev/null >/dev/udp/{to}/{port}; sleep 0.02; \
                     done; true"
                );
                let status = net
                    .command_in(node, &env.bash)
                    .args(["-c", &script])
                    .status()
                    .expect("sending from a node");
                assert!(status.success(), "sending from node {node}: {status}");
            }
        }
    }

    /// Whether UDP datagrams sent from `from` arrive at `to`: counted by the receiving node's
    /// kernel, or received on a host socket.
    fn delivered(env: &Env, net: &Network, from: End, to: End) -> bool {
        match to {
            Node(node) => {
                let before = udp_no_ports(env, net, node);
                send(env, net, from, net.node_addr(node), CLOSED_PORT);
                std::thread::sleep(SETTLE);
                udp_no_ports(env, net, node) > before
            }
            Host => {
                let socket = UdpSocket::bind((net.host_addr(), 0)).expect("host socket");
                socket.set_read_timeout(Some(SETTLE)).expect("timeout");
                let port = socket.local_addr().expect("local addr").port();
                send(env, net, from, net.host_addr(), port);
                socket.recv(&mut [0u8; 16]).is_ok()
            }
        }
    }

    /// Checks every `(from, to, arrives)`; fails listing all mismatches.
    fn expect_traffic(env: &Env, net: &Network, what: &str, cases: &[(End, End, bool)]) {
        let wrong: Vec<String> = cases
            .iter()
            .filter(|&&(from, to, arrives)| delivered(env, net, from, to) != arrives)
            .map(|&(from, to, arrives)| {
                format!(
                    "{from:?} -> {to:?} should {}",
                    if arrives { "arrive" } else { "be dropped" }
                )
            })
            .collect();
        assert!(wrong.is_empty(), "{what}: {}", wrong.join(", "));
    }

    fn full_mesh(nodes: usize, arrives: bool) -> Vec<(End, End, bool)> {
        let mut cases = Vec::new();
        for a in 1..=nodes {
            for b in (1..=nodes).filter(|&b| b != a) {
                cases.push((Node(a), Node(b), arrives));
            }
        }
        cases
    }

    fn clients(nodes: usize) -> Vec<(End, End, bool)> {
        (1..=nodes)
            .flat_map(|node| [(Host, Node(node), true), (Node(node), Host, true)])
            .collect()
    }

    fn leftovers(prefix: &str) -> Vec<String> {
        leftover_names(&Names::new(prefix)).expect("listing leftovers")
    }

    #[test]
    fn choose_subnet_skips_every_overlap_but_default_routes() {
        assert_eq!(choose_subnet(""), Some(Subnet([10, 213, 77])));
        let host = "default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel scope \
                    link src 192.0.2.2\nlocal 127.0.0.0/8 dev lo table local";
        assert_eq!(choose_subnet(host), Some(Subnet([10, 213, 77])));
        assert_eq!(
            choose_subnet("4: x    inet 10.213.77.9/32 scope global x"),
            Some(Subnet([10, 213, 78]))
        );
        assert_eq!(
            choose_subnet("10.213.0.0/16 via 10.1.1.1 dev tun0"),
            Some(Subnet([172, 30, 213]))
        );
        assert_eq!(
            choose_subnet("10.0.0.0/8 dev a\n172.16.0.0/12 dev b\n192.168.0.0/16 dev c"),
            None
        );
        assert_eq!(
            choose_subnet("0.0.0.0/0 via 10.9.9.9 metric 100"),
            Some(Subnet([10, 213, 77]))
        );
        assert_eq!(parse_prefix("10.1.2.3/33"), None);
        assert_eq!(parse_prefix("fe80::1/64"), None);
    }

    #[test]
    fn parses_ip_and_tc_listings() {
        assert_eq!(
            parse_namespaces("sljep-n1 (id: 2)\nsljep-br\n"),
            vec!["sljep-n1", "sljep-br"]
        );
        let links = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n7: sljep-h@if3: <BROADCAST> mtu \
                     1500\n";
        assert_eq!(parse_links(links), vec!["lo", "sljep-h"]);
        let filters = "filter protocol ip pref 11 u32 chain 0\nfilter protocol ip pref 11 u32 \
                       chain 0 fh 800: ht divisor 1\nfilter protocol ip pref 13 u32 chain 0\n";
        assert_eq!(filter_prefs(filters), BTreeSet::from([11, 13]));
    }

    #[test]
    fn names_carry_the_prefix_and_nothing_else_matches() {
        let names = Names::new(PREFIX);
        assert_eq!(names.bridge_ns(), "sljep-br");
        assert_eq!(names.node_ns(3), "sljep-n3");
        assert_eq!(names.host_veth(), "sljep-h");
        assert!(names.owns("sljep-n1") && names.owns(&names.probe_ns()));
        assert!(names.is_probe(&names.probe_ns()) && !names.is_probe("sljep-br"));
        assert!(!names.owns("sljepx-n1") && !names.owns("sljep") && !names.owns("eth0"));
        assert!(
            names.host_veth().len() <= 15,
            "interface names have at most 15 bytes"
        );
    }

    #[test]
    fn netem_specs_become_tc_words_and_bad_ones_are_refused() {
        let spec = NetemSpec {
            delay_ms: 50,
            jitter_ms: 10,
            loss_percent: 12.5,
            duplicate_percent: 100.0,
        };
        assert_eq!(
            spec.qdisc_args().join(" "),
            "netem limit 100000 delay 50ms 10ms loss 12.5% duplicate 100%"
        );
        assert_eq!(
            NetemSpec::default().qdisc_args().join(" "),
            "netem limit 100000 delay 0ms"
        );
        for bad in [-1.0, 100.5, f64::NAN, f64::INFINITY] {
            let spec = NetemSpec {
                loss_percent: bad,
                ..NetemSpec::default()
            };
            assert!(spec.check().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<NetemSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn create_refuses_impossible_sizes_before_touching_anything() {
        for nodes in [0, NODES_MAX + 1] {
            let error = Network::create(nodes).unwrap_err().to_string();
            assert!(error.contains("1 to 5 nodes"), "{error}");
        }
    }

    #[test]
    fn create_then_destroy_leaves_nothing_twice_in_a_row() {
        let Some(env) = namespaces_or_skip(false) else {
            return;
        };
        for _ in 0..2 {
            let mut net = Network::create_with_prefix(TEST_PREFIX, 3).expect("create");
            assert_eq!(net.nodes(), 3);
            assert_eq!(net.namespace(2), "sljt-n2");
            let mut made = leftovers(TEST_PREFIX);
            made.sort();
            assert_eq!(
                made,
                vec!["sljt-br", "sljt-h", "sljt-n1", "sljt-n2", "sljt-n3"]
            );
            assert_eq!(net.node_addr(1).octets()[3], 1);
            assert_eq!(net.host_addr().octets()[3], 254);
            let mut node = net
                .command_in(1, &env.bash)
                .args(["-c", "sleep 60"])
                .spawn()
                .expect("a process inside node 1");
            assert_eq!(net.destroy(), Vec::<String>::new());
            let status = node.wait().expect("wait");
            assert!(
                !status.success(),
                "destroy kills what runs inside: {status}"
            );
            assert_eq!(leftovers(TEST_PREFIX), Vec::<String>::new());
            let links = ip(&["link", "show"]).unwrap();
            assert!(!links.contains("sljt-"), "{links}");
            let netns = ip(&["netns", "list"]).unwrap();
            assert!(!netns.contains("sljt-"), "{netns}");
            assert_eq!(net.destroy(), Vec::<String>::new(), "destroy is idempotent");
        }
    }

    #[test]
    fn nodes_and_host_reach_each_other_and_commands_run_inside() {
        let Some(env) = namespaces_or_skip(false) else {
            return;
        };
        let net = Network::create_with_prefix(TEST_PREFIX, 3).expect("create");
        let mut cases = full_mesh(3, true);
        cases.extend(clients(3));
        expect_traffic(&env, &net, "fresh network", &cases);

        let child = net
            .command_in(2, &env.bash)
            .args(["-c", "echo $$"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn in namespace");
        let pid = child.id();
        let output = child.wait_with_output().expect("wait");
        let printed = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            printed.trim(),
            pid.to_string(),
            "ip netns exec execs the program"
        );

        let ip_path = find_program("ip").expect("ip");
        let output = net
            .command_in(2, &ip_path)
            .args(["-4", "-o", "addr", "show"])
            .output()
            .expect("ip inside");
        let addrs = String::from_utf8_lossy(&output.stdout);
        assert!(
            addrs.contains(&format!("{}/24", net.node_addr(2))),
            "{addrs}"
        );
        assert!(!addrs.contains(&net.node_addr(1).to_string()), "{addrs}");
    }

    #[test]
    fn symmetric_partition_cuts_both_ways_and_spares_clients() {
        let Some(env) = namespaces_or_skip(false) else {
            return;
        };
        let net = Network::create_with_prefix(TEST_PREFIX, 3).expect("create");
        net.partition(&[(1, 2), (2, 1), (1, 3), (3, 1)])
            .expect("partition");
        let mut cases = vec![
            (Node(1), Node(2), false),
            (Node(2), Node(1), false),
            (Node(1), Node(3), false),
            (Node(3), Node(1), false),
            (Node(2), Node(3), true),
            (Node(3), Node(2), true),
        ];
        cases.extend(clients(3));
        expect_traffic(&env, &net, "node 1 isolated", &cases);

        net.heal().expect("heal");
        let mut cases = full_mesh(3, true);
        cases.extend(clients(3));
        expect_traffic(&env, &net, "healed", &cases);
        net.heal().expect("healing a healed network");
    }

    #[test]
    fn one_way_partitions_block_one_direction_and_are_replaced_whole() {
        let Some(env) = namespaces_or_skip(false) else {
            return;
        };
        let net = Network::create_with_prefix(TEST_PREFIX, 3).expect("create");
        net.partition(&[(1, 2)]).expect("partition");
        expect_traffic(
            &env,
            &net,
            "1 -> 2 blocked",
            &[
                (Node(1), Node(2), false),
                (Node(2), Node(1), true),
                (Node(1), Node(3), true),
                (Node(2), Host, true),
                (Host, Node(2), true),
            ],
        );

        net.partition(&[(2, 3), (1, 2), (1, 2)]).expect("partition");
        net.partition(&[(2, 3)]).expect("replace");
        expect_traffic(
            &env,
            &net,
            "replaced by 2 -> 3 blocked",
            &[
                (Node(1), Node(2), true),
                (Node(2), Node(3), false),
                (Node(3), Node(2), true),
            ],
        );

        assert!(net.partition(&[(1, 1)]).is_err());
        assert!(net.partition(&[(1, 4)]).is_err());
        net.heal().expect("heal");
        expect_traffic(&env, &net, "healed", &full_mesh(3, true));
    }

    /// Stands in for netem with a queue that drops everything (`bfifo limit 0`) under netem's
    /// handle: checks that only node-to-node traffic goes through that class and that
    /// `clear_netem` restores it, on kernels without netem too.
    #[test]
    fn the_netem_class_carries_only_node_traffic() {
        let Some(env) = namespaces_or_skip(false) else {
            return;
        };
        let net = Network::create_with_prefix(TEST_PREFIX, 3).expect("create");
        let drop_all = ["bfifo".to_string(), "limit".to_string(), "0".to_string()];
        net.replace_node_queue(1, NETEM_HANDLE, &drop_all)
            .expect("drop queue");
        expect_traffic(
            &env,
            &net,
            "node 1's node-bound class drops",
            &[
                (Node(1), Node(2), false),
                (Node(1), Node(3), false),
                (Node(2), Node(1), true),
                (Node(1), Host, true),
                (Host, Node(1), true),
            ],
        );
        net.clear_netem().expect("clear");
        net.clear_netem().expect("clear twice");
        expect_traffic(&env, &net, "cleared", &full_mesh(3, true));
    }

    #[test]
    fn netem_loss_blocks_node_traffic_composes_with_partitions_and_clears() {
        let Some(env) = namespaces_or_skip(true) else {
            return;
        };
        let net = Network::create_with_prefix(TEST_PREFIX, 3).expect("create");
        let lose_all = NetemSpec {
            loss_percent: 100.0,
            ..NetemSpec::default()
        };
        net.set_netem(Some(1), lose_all).expect("netem on node 1");
        expect_traffic(
            &env,
            &net,
            "node 1 loses everything it sends to nodes",
            &[
                (Node(1), Node(2), false),
                (Node(1), Node(3), false),
                (Node(2), Node(1), true),
                (Node(1), Host, true),
                (Host, Node(1), true),
            ],
        );

        let delay = NetemSpec {
            delay_ms: 5,
            jitter_ms: 1,
            ..NetemSpec::default()
        };
        net.set_netem(Some(1), delay).expect("replace spec");
        expect_traffic(&env, &net, "only delayed", &[(Node(1), Node(2), true)]);

        net.set_netem(None, delay).expect("netem everywhere");
        net.partition(&[(1, 2)]).expect("partition");
        expect_traffic(
            &env,
            &net,
            "partition under netem",
            &[(Node(1), Node(2), false), (Node(2), Node(1), true)],
        );
        net.heal().expect("heal");

        net.set_netem(None, lose_all).expect("netem everywhere");
        expect_traffic(&env, &net, "all node traffic lost", &full_mesh(3, false));
        net.clear_netem().expect("clear");
        let mut cases = full_mesh(3, true);
        cases.extend(clients(3));
        expect_traffic(&env, &net, "cleared", &cases);
    }

    #[test]
    fn clean_leftovers_removes_a_half_made_setup() {
        let Some(env) = namespaces_or_skip(false) else {
            return;
        };
        ip(&["netns", "add", "sljt-br"]).unwrap();
        ip(&["netns", "add", "sljt-n1"]).unwrap();
        ip(&[
            "link", "add", "name", "sljt-h", "type", "veth", "peer", "name", HOST_PORT, "netns",
            "sljt-br",
        ])
        .unwrap();
        let mut squatter = Command::new(find_program("ip").unwrap())
            .args(["netns", "exec", "sljt-n1"])
            .arg(&env.bash)
            .args(["-c", "sleep 60"])
            .spawn()
            .expect("process inside a leftover namespace");

        let error = Network::create_with_prefix(TEST_PREFIX, 2)
            .unwrap_err()
            .to_string();
        assert!(error.contains("seedlog jepsen clean"), "{error}");
        assert!(
            error.contains("sljt-h") && error.contains("sljt-n1"),
            "{error}"
        );
        let other = Network::create_with_prefix(OTHER_TEST_PREFIX, 1).expect("other prefix");
        drop(other);

        let removed = clean_leftovers_with_prefix(TEST_PREFIX).expect("clean");
        for name in ["sljt-h", "sljt-br", "sljt-n1"] {
            assert!(removed.iter().any(|r| r == name), "{removed:?}");
        }
        let process = format!("process {} in sljt-n1", squatter.id());
        assert!(removed.contains(&process), "{removed:?}");
        let status = squatter.wait().expect("wait");
        assert!(!status.success(), "the process was killed: {status}");
        assert_eq!(leftovers(TEST_PREFIX), Vec::<String>::new());
        assert_eq!(
            clean_leftovers_with_prefix(TEST_PREFIX).expect("clean again"),
            Vec::<String>::new()
        );

        let net = Network::create_with_prefix(TEST_PREFIX, 2).expect("create after clean");
        expect_traffic(&env, &net, "after clean", &full_mesh(2, true));
    }

    #[test]
    fn a_failure_part_way_removes_what_create_made() {
        let Some(_env) = namespaces_or_skip(false) else {
            return;
        };
        // The host veth, created last, gets a name over the kernel's 15-byte limit; the
        // namespaces carry TEST_PREFIX, so a failed rollback would still be cleaned up.
        let prefix = format!("{TEST_PREFIX}-overlong-x");
        let error = format!(
            "{:#}",
            Network::create_with_prefix(&prefix, 2).expect_err("the host veth name is too long")
        );
        assert!(
            error.contains(&format!("ip link add name {prefix}-h")),
            "{error}"
        );
        assert_eq!(leftovers(TEST_PREFIX), Vec::<String>::new(), "{error}");
    }

    #[test]
    fn a_second_network_takes_the_next_free_subnet() {
        let Some(env) = namespaces_or_skip(false) else {
            return;
        };
        let first = Network::create_with_prefix(TEST_PREFIX, 2).expect("first");
        let second = Network::create_with_prefix(OTHER_TEST_PREFIX, 2).expect("second");
        assert_ne!(first.subnet, second.subnet);
        let mut cases = full_mesh(2, true);
        cases.extend(clients(2));
        expect_traffic(&env, &first, "first", &cases);
        expect_traffic(&env, &second, "second", &cases);
    }

    #[test]
    fn preflight_explains_itself() {
        let Some(_env) = namespaces_or_skip(false) else {
            return;
        };
        match preflight() {
            Ok(()) => println!("netem is available"),
            Err(reason) => {
                assert!(reason.contains("netem"), "{reason}");
                assert!(reason.ends_with('.'), "{reason}");
                println!("preflight: {reason}");
            }
        }
        let probes: Vec<String> = namespaces()
            .unwrap()
            .into_iter()
            .filter(|name| Names::new(PREFIX).is_probe(name))
            .collect();
        assert_eq!(
            probes,
            Vec::<String>::new(),
            "the probe namespace is removed"
        );
    }
}
