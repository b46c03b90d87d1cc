//! Elle-style cycle analysis over transactional histories.
//!
//! Vertices are the operations that took effect: ok sends, polls and transactions, plus
//! indeterminate ones whose writes were observed. Edges:
//! - ww: in a partition's version order (offsets known from polls and acknowledged sends), the
//!   writer of one value and the writer of the next value by a different operation;
//! - wr: the writer of a value and every operation that read it;
//! - process: consecutive operations of one process (the chain restarts after an indeterminate
//!   operation or a crash, after which the process is a new client);
//! - realtime: A completed before B was invoked, kept transitively reduced by a sweep that only
//!   links B to the operations on the completion frontier at B's invocation.
//!
//! The search computes strongly connected components (iterative Tarjan) of successively larger
//! edge subsets, from ww alone up to all four kinds, and in each non-trivial component finds a
//! shortest cycle by breadth-first search from each of its vertices. The cycle's edge kinds give
//! its class: only ww is G0; ww and wr is G1c; needing process or realtime edges adds the
//! `-process` or `-realtime` suffix. Subsets without ww are searched as well, so a cycle that
//! the Kafka transaction model forbids (see SEMANTICS.md: one without ww edges) is found even
//! when allowed cycles share its component. If the time limit runs out, every component not yet
//! explained is reported as "cycle exists, unclassified".

use std::collections::BTreeSet;
use std::time::Instant;

use crate::anomaly::{Anomalies, Anomaly, AnomalyClass, EdgeKind};
use crate::history::{History, OpId, OpKind, Outcome};
use crate::queue::{for_each_observation, for_each_read, for_each_send};
use crate::util::FastMap;

/// The dependency graph in compressed adjacency form.
struct Graph {
    /// Vertex → operation.
    ops: Vec<OpId>,
    /// `start[v]..start[v + 1]` indexes `out` for vertex v.
    start: Vec<usize>,
    /// (target, kind) of each edge, grouped by source.
    out: Vec<(u32, EdgeKind)>,
}

fn mask_has(mask: &[EdgeKind], kind: EdgeKind) -> bool {
    mask.contains(&kind)
}

/// True if the history has transactions, the workloads the cycle analysis is for.
#[must_use]
pub fn has_transactions(history: &History) -> bool {
    history
        .ops()
        .iter()
        .any(|op| matches!(op.kind, OpKind::Txn { .. }))
}

/// Builds the graph and reports the cycles found into `out`.
pub fn analyze(history: &History, deadline: Option<Instant>, out: &mut Anomalies) {
    let graph = build_graph(history);
    let full = [
        EdgeKind::Ww,
        EdgeKind::Wr,
        EdgeKind::Process,
        EdgeKind::Realtime,
    ];
    let full_sccs = sccs(&graph, &full);
    if full_sccs.is_empty() {
        return;
    }
    let mut comp_of = vec![u32::MAX; graph.ops.len()];
    for (c, scc) in full_sccs.iter().enumerate() {
        scc.iter().for_each(|v| comp_of[*v as usize] = c as u32);
    }
    let masks: [&[EdgeKind]; 9] = [
        &[EdgeKind::Ww],
        &[EdgeKind::Ww, EdgeKind::Wr],
        &[EdgeKind::Wr],
        &[EdgeKind::Wr, EdgeKind::Process],
        &[EdgeKind::Ww, EdgeKind::Process],
        &[EdgeKind::Ww, EdgeKind::Wr, EdgeKind::Process],
        &[EdgeKind::Wr, EdgeKind::Process, EdgeKind::Realtime],
        &[EdgeKind::Ww, EdgeKind::Process, EdgeKind::Realtime],
        &full,
    ];
    // Per component: the first (simplest) cycle found, and the first cycle without ww edges,
    // which is the one the transaction semantics forbid.
    let mut first_done: BTreeSet<u32> = BTreeSet::new();
    let mut no_ww_done: BTreeSet<u32> = BTreeSet::new();
    for mask in masks {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            report_unclassified(&graph, &full_sccs, &first_done, out);
            return;
        }
        for scc in sccs(&graph, mask) {
            let Some((vertices, kinds)) = shortest_cycle(&graph, &scc, mask, deadline) else {
                continue;
            };
            let class = classify(&kinds);
            let comp = comp_of[vertices[0] as usize];
            let no_ww = !kinds.contains(&EdgeKind::Ww);
            let report = (no_ww && no_ww_done.insert(comp)) | first_done.insert(comp);
            if report {
                let ops: Vec<OpId> = vertices.iter().map(|v| graph.ops[*v as usize]).collect();
                out.push(cycle_anomaly(class, ops, kinds));
            }
        }
    }
}

fn report_unclassified(
    graph: &Graph,
    full_sccs: &[Vec<u32>],
    explained: &BTreeSet<u32>,
    out: &mut Anomalies,
) {
    for (c, scc) in full_sccs.iter().enumerate() {
        if explained.contains(&(c as u32)) {
            continue;
        }
        let ops: Vec<OpId> = scc
            .iter()
            .take(20)
            .map(|v| graph.ops[*v as usize])
            .collect();
        out.report(AnomalyClass::CycleUnclassified, || Anomaly {
            class: AnomalyClass::CycleUnclassified,
            key: None,
            explanation: format!(
                "a dependency cycle exists among {} operations, but the time limit ran out before it was classified",
                scc.len()
            ),
            ops,
            edges: Vec::new(),
        });
    }
}

fn classify(kinds: &[EdgeKind]) -> AnomalyClass {
    let wr = kinds.contains(&EdgeKind::Wr);
    if kinds.contains(&EdgeKind::Realtime) {
        if wr {
            AnomalyClass::G1cRealtime
        } else {
            AnomalyClass::G0Realtime
        }
    } else if kinds.contains(&EdgeKind::Process) {
        if wr {
            AnomalyClass::G1cProcess
        } else {
            AnomalyClass::G0Process
        }
    } else if wr {
        AnomalyClass::G1c
    } else {
        AnomalyClass::G0
    }
}

fn cycle_anomaly(class: AnomalyClass, ops: Vec<OpId>, edges: Vec<EdgeKind>) -> Anomaly {
    let mut text = String::new();
    for (op, edge) in ops.iter().zip(&edges) {
        text.push_str(&format!("op {} -{}-> ", op.0, edge.name()));
    }
    text.push_str(&format!("op {}", ops[0].0));
    Anomaly {
        class,
        key: None,
        explanation: format!("dependency cycle: {text}"),
        ops,
        edges,
    }
}

fn build_graph(history: &History) -> Graph {
    let (ops, vertex_of, writer) = vertices(history);
    let mut edges: Vec<(u32, u32, EdgeKind)> = Vec::new();
    ww_edges(history, &vertex_of, &writer, &mut edges);
    for (v, id) in ops.iter().enumerate() {
        for_each_read(&history.ops()[id.0 as usize], |k, _, value| {
            if let Some(w) = writer.get(&(k.0, value)).and_then(|w| vertex_of.get(w)) {
                if *w != v as u32 {
                    edges.push((*w, v as u32, EdgeKind::Wr));
                }
            }
        });
    }
    process_edges(history, &vertex_of, &mut edges);
    realtime_edges(history, &ops, &mut edges);
    edges.sort_unstable();
    edges.dedup();
    let mut start = vec![0usize; ops.len() + 1];
    edges
        .iter()
        .for_each(|(from, _, _)| start[*from as usize + 1] += 1);
    for i in 0..ops.len() {
        start[i + 1] += start[i];
    }
    let out = edges.iter().map(|(_, to, kind)| (*to, *kind)).collect();
    Graph { ops, start, out }
}

type Vertices = (Vec<OpId>, FastMap<OpId, u32>, FastMap<(u32, i64), OpId>);

/// The operations that took effect, and the writer of every value.
fn vertices(history: &History) -> Vertices {
    let mut writer: FastMap<(u32, i64), OpId> = FastMap::default();
    let mut read_values: FastMap<(u32, i64), ()> = FastMap::default();
    for op in history.ops() {
        for_each_send(op, |k, v, _| {
            writer.entry((k.0, v)).or_insert(op.id);
        });
        for_each_read(op, |k, _, v| {
            read_values.insert((k.0, v), ());
        });
    }
    let mut ops = Vec::new();
    let mut vertex_of: FastMap<OpId, u32> = FastMap::default();
    for op in history.ops() {
        let relevant = matches!(
            op.kind,
            OpKind::Send { .. } | OpKind::Poll { .. } | OpKind::Txn { .. }
        );
        let took_effect = match op.outcome {
            Outcome::Ok => true,
            Outcome::Fail => false,
            Outcome::Info => {
                let mut observed = false;
                for_each_send(op, |k, v, _| {
                    observed |= read_values.contains_key(&(k.0, v))
                });
                observed
            }
        };
        if relevant && took_effect {
            vertex_of.insert(op.id, ops.len() as u32);
            ops.push(op.id);
        }
    }
    (ops, vertex_of, writer)
}

fn ww_edges(
    history: &History,
    vertex_of: &FastMap<OpId, u32>,
    writer: &FastMap<(u32, i64), OpId>,
    edges: &mut Vec<(u32, u32, EdgeKind)>,
) {
    let mut order: Vec<(u32, i64, u32)> = Vec::new();
    for op in history.ops() {
        for_each_observation(op, |k, o, v| {
            if let Some(w) = writer.get(&(k.0, v)).and_then(|w| vertex_of.get(w)) {
                order.push((k.0, o, *w));
            }
        });
    }
    order.sort_unstable();
    order.dedup();
    for pair in order.windows(2) {
        let ((k1, _, w1), (k2, _, w2)) = (pair[0], pair[1]);
        if k1 == k2 && w1 != w2 {
            edges.push((w1, w2, EdgeKind::Ww));
        }
    }
}

fn process_edges(
    history: &History,
    vertex_of: &FastMap<OpId, u32>,
    edges: &mut Vec<(u32, u32, EdgeKind)>,
) {
    let mut last: FastMap<u64, u32> = FastMap::default();
    for id in history.by_invoke_time() {
        let op = &history.ops()[id.0 as usize];
        match vertex_of.get(&id) {
            Some(v) if op.outcome == Outcome::Ok => {
                if let Some(prev) = last.insert(op.process, *v) {
                    edges.push((prev, *v, EdgeKind::Process));
                }
            }
            _ => {
                if op.outcome == Outcome::Info || matches!(op.kind, OpKind::Crash) {
                    last.remove(&op.process);
                }
            }
        }
    }
}

fn realtime_edges(history: &History, ops: &[OpId], edges: &mut Vec<(u32, u32, EdgeKind)>) {
    let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(ops.len() * 2);
    for (v, id) in ops.iter().enumerate() {
        let op = &history.ops()[id.0 as usize];
        events.push((op.invoke_ns, 0, v as u32));
        if let Some(done) = op.complete_ns {
            events.push((done, 1, v as u32));
        }
    }
    events.sort_unstable();
    let mut frontier: Vec<u32> = Vec::new();
    let mut preds: FastMap<u32, Vec<u32>> = FastMap::default();
    for (_, kind, v) in events {
        if kind == 0 {
            edges.extend(frontier.iter().map(|f| (*f, v, EdgeKind::Realtime)));
            preds.insert(v, frontier.clone());
        } else {
            let before = preds.remove(&v).unwrap_or_default();
            frontier.retain(|f| !before.contains(f));
            frontier.push(v);
        }
    }
}

/// Non-trivial strongly connected components of the subgraph with edge kinds in `mask`, by an
/// iterative Tarjan; vertices within a component are sorted.
fn sccs(graph: &Graph, mask: &[EdgeKind]) -> Vec<Vec<u32>> {
    let n = graph.ops.len();
    let mut index = vec![u32::MAX; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut call: Vec<(u32, usize)> = Vec::new();
    let mut next_index = 0u32;
    let mut result = Vec::new();
    for root in 0..n as u32 {
        if index[root as usize] != u32::MAX {
            continue;
        }
        call.push((root, graph.start[root as usize]));
        while let Some((v, edge)) = call.pop() {
            let vu = v as usize;
            if edge == graph.start[vu] && index[vu] == u32::MAX {
                index[vu] = next_index;
                low[vu] = next_index;
                next_index += 1;
                stack.push(v);
                on_stack[vu] = true;
            }
            if edge < graph.start[vu + 1] {
                call.push((v, edge + 1));
                let (w, kind) = graph.out[edge];
                if !mask_has(mask, kind) {
                    continue;
                }
                if index[w as usize] == u32::MAX {
                    call.push((w, graph.start[w as usize]));
                } else if on_stack[w as usize] {
                    low[vu] = low[vu].min(index[w as usize]);
                }
                continue;
            }
            if low[vu] == index[vu] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w as usize] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort_unstable();
                    result.push(comp);
                }
            }
            if let Some((parent, _)) = call.last() {
                let p = *parent as usize;
                low[p] = low[p].min(low[vu]);
            }
        }
    }
    result.sort();
    result
}

/// The shortest cycle inside `scc` using only `mask` edges: the shortest cycle through each
/// vertex, by breadth-first search, keeping the shortest overall. It stops early at length 2
/// (there are no self-loops, so nothing is shorter) or, with a cycle in hand, at the deadline,
/// in which case the cycle is short but not proven shortest.
fn shortest_cycle(
    graph: &Graph,
    scc: &[u32],
    mask: &[EdgeKind],
    deadline: Option<Instant>,
) -> Option<(Vec<u32>, Vec<EdgeKind>)> {
    let members: FastMap<u32, ()> = scc.iter().map(|v| (*v, ())).collect();
    let mut best: Option<(Vec<u32>, Vec<EdgeKind>)> = None;
    for &s in scc {
        if best.as_ref().is_some_and(|b| b.0.len() <= 2) {
            break;
        }
        if best.is_some() && deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let Some(found) = bfs_cycle(graph, s, &members, mask) else {
            continue;
        };
        if best.as_ref().is_none_or(|b| found.0.len() < b.0.len()) {
            best = Some(found);
        }
    }
    best
}

fn bfs_cycle(
    graph: &Graph,
    s: u32,
    members: &FastMap<u32, ()>,
    mask: &[EdgeKind],
) -> Option<(Vec<u32>, Vec<EdgeKind>)> {
    let mut parent: FastMap<u32, (u32, EdgeKind)> = FastMap::default();
    let mut queue = std::collections::VecDeque::from([s]);
    while let Some(v) = queue.pop_front() {
        for &(w, kind) in &graph.out[graph.start[v as usize]..graph.start[v as usize + 1]] {
            if !mask_has(mask, kind) || !members.contains_key(&w) || parent.contains_key(&w) {
                continue;
            }
            parent.insert(w, (v, kind));
            if w == s {
                return Some(unwind_path(s, &parent));
            }
            queue.push_back(w);
        }
    }
    None
}

fn unwind_path(s: u32, parent: &FastMap<u32, (u32, EdgeKind)>) -> (Vec<u32>, Vec<EdgeKind>) {
    let mut vertices = Vec::new();
    let mut kinds = Vec::new();
    let mut at = s;
    loop {
        let (p, kind) = parent[&at];
        vertices.push(p);
        kinds.push(kind);
        at = p;
        if at == s {
            break;
        }
    }
    vertices.reverse();
    kinds.reverse();
    (vertices, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: u32, edges: &[(u32, u32)]) -> Graph {
        let mut edges: Vec<(u32, u32, EdgeKind)> =
            edges.iter().map(|(a, b)| (*a, *b, EdgeKind::Ww)).collect();
        edges.sort_unstable();
        let mut start = vec![0usize; n as usize + 1];
        edges
            .iter()
            .for_each(|(from, _, _)| start[*from as usize + 1] += 1);
        for i in 0..n as usize {
            start[i + 1] += start[i];
        }
        let out = edges.iter().map(|(_, to, kind)| (*to, *kind)).collect();
        Graph {
            ops: (0..n).map(OpId).collect(),
            start,
            out,
        }
    }

    // The reported cycle is the shortest in the component even when it avoids the vertices a
    // search would try first: here a ring 0 → 1 → … → 11 → 0 where only 10 ⇄ 11 is a 2-cycle.
    #[test]
    fn finds_the_shortest_cycle_anywhere_in_the_component() {
        let mut edges: Vec<(u32, u32)> = (0..12).map(|v| (v, (v + 1) % 12)).collect();
        edges.push((11, 10));
        let g = graph(12, &edges);
        let scc: Vec<u32> = (0..12).collect();
        let (vertices, kinds) = shortest_cycle(&g, &scc, &[EdgeKind::Ww], None).expect("cycle");
        assert_eq!(kinds.len(), 2);
        let mut sorted = vertices.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![10, 11]);
    }
}
