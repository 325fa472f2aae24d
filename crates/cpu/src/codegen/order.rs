//! The order a kernel body is emitted in: output by output, each output's
//! store right after the nodes it needs that no earlier output needed.
//!
//! Cranelift places pure arithmetic just before its first use by an
//! instruction with effects and keeps loads and stores where they are
//! emitted. Emitted node by node and then store by store, a fused body keeps
//! every loaded value and every result alive from its load to the last store
//! of the iteration; a long body then spills x86's sixteen vector registers
//! on every iteration. Emitted output by output, a load sits just before the
//! first store that needs it.
//!
//! A node a native row function computes (see [`crate::math::bulk`]) gets a
//! stage of its own, run over a whole row before the body: the stage's items
//! compute the node's argument into a row buffer, the function computes the
//! node's values for the row, and the body (and later stages) read them back.
//! What a stage needs besides is emitted again where later needed: loads and
//! cheap arithmetic cost less than a round trip through memory.

use crate::math::bulk::RowOp;
use arrayjit_lower::{Kernel, Node};

/// One step of the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Item {
    Node(usize),
    Output(usize),
    /// A node computed by a stage, read from its row buffer.
    Row(usize),
}

/// A node computed for a whole row by a native function before the body.
#[derive(Clone, Debug)]
pub(super) struct Stage {
    pub node: usize,
    pub op: RowOp,
    /// The node's argument.
    pub arg: usize,
    /// What computes the argument at a point (the argument last).
    pub items: Vec<Item>,
}

#[derive(Clone, Debug)]
pub(super) struct Order {
    /// The body, run after the stages.
    pub items: Vec<Item>,
    /// Run over each row before the body, in order.
    pub stages: Vec<Stage>,
    /// Per output, per input: whether every read of the input at a point
    /// comes before the output's write at that point, so that the input's
    /// memory may hold the output.
    pub reads_first: Vec<Vec<bool>>,
}

fn reads(n: &Node) -> Option<usize> {
    match n {
        Node::Load { input, .. } | Node::Gather { input, .. } => Some(*input),
        Node::Const(_) | Node::Index(_) | Node::Op { .. } => None,
    }
}

/// The nodes a node reads.
pub(super) fn args(n: &Node) -> &[usize] {
    match n {
        Node::Op { args, .. } => args,
        Node::Gather { index, .. } => std::slice::from_ref(index),
        Node::Load { .. } | Node::Const(_) | Node::Index(_) => &[],
    }
}

/// The emission order of `k`'s body, with a stage for each node `row_ops`
/// gives a row function.
pub(super) fn plan(k: &Kernel, row_ops: &[Option<RowOp>]) -> Order {
    let row_op = |ni: usize| row_ops.get(ni).copied().flatten();
    // Stages in node order, which is a topological order.
    let mut stages = Vec::new();
    for (ni, n) in k.nodes.iter().enumerate() {
        let (Some(op), Node::Op { args, .. }) = (row_op(ni), &n.node) else { continue };
        let Some(&arg) = args.first() else { continue };
        let mut done = vec![false; k.nodes.len()];
        let items = closure(k, arg, &mut done, &row_op).into_iter().map(|(ni, row)| item(ni, row)).collect();
        stages.push(Stage { node: ni, op, arg, items });
    }
    let mut done = vec![false; k.nodes.len()];
    let mut items = Vec::with_capacity(k.nodes.len() + k.outputs.len());
    let mut outputs: Vec<usize> = (0..k.outputs.len()).collect();
    outputs.sort_by_key(|&o| k.outputs[o].node);
    for o in outputs {
        items.extend(closure(k, k.outputs[o].node, &mut done, &row_op).into_iter().map(|(ni, row)| item(ni, row)));
        items.push(Item::Output(o));
    }
    let reads_first = reads_first(k, &stages, &items);
    Order { items, stages, reads_first }
}

fn item(ni: usize, row: bool) -> Item {
    if row {
        Item::Row(ni)
    } else {
        Item::Node(ni)
    }
}

/// The nodes `root` needs that `done` does not mark yet (marking them), in
/// node order, each with whether a stage computes it (its arguments are then
/// not needed).
fn closure(k: &Kernel, root: usize, done: &mut [bool], row_op: &impl Fn(usize) -> Option<RowOp>) -> Vec<(usize, bool)> {
    let mut need = Vec::new();
    let mut stack = vec![root];
    while let Some(ni) = stack.pop() {
        if std::mem::replace(&mut done[ni], true) {
            continue;
        }
        let row = row_op(ni).is_some();
        need.push((ni, row));
        if !row {
            stack.extend_from_slice(args(&k.nodes[ni].node));
        }
    }
    need.sort_unstable();
    need
}

/// Per output, per input: whether every read of the input at a point comes
/// before the output's write there. The stages run over a row before the
/// body writes any of it.
fn reads_first(k: &Kernel, stages: &[Stage], items: &[Item]) -> Vec<Vec<bool>> {
    let loads = |items: &[Item]| -> Vec<usize> {
        items
            .iter()
            .filter_map(|it| match *it {
                Item::Node(ni) => reads(&k.nodes[ni].node),
                Item::Output(_) | Item::Row(_) => None,
            })
            .collect()
    };
    let mut read = vec![0usize; k.inputs.len()];
    for s in stages {
        for i in loads(&s.items) {
            read[i] += 1;
        }
    }
    let mut total = read.clone();
    for i in loads(items) {
        total[i] += 1;
    }
    let mut out = vec![Vec::new(); k.outputs.len()];
    for it in items {
        match *it {
            Item::Node(ni) => {
                if let Some(i) = reads(&k.nodes[ni].node) {
                    read[i] += 1;
                }
            }
            Item::Output(o) => out[o] = read.iter().zip(&total).map(|(r, t)| r == t).collect(),
            Item::Row(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::prim::Elementwise as E;
    use arrayjit_ir::{AVal, DType};
    use arrayjit_lower::{Affine, KNode, KOutput, OutputKind};

    fn load(input: usize) -> KNode {
        KNode { node: Node::Load { input, at: Affine { offset: 0, coeffs: vec![1] } }, dtype: DType::F32 }
    }

    #[test]
    fn each_store_follows_the_loads_it_needs_and_records_what_was_read_first() {
        let aval = AVal::new(DType::F32, [8]);
        let op = |op, args| KNode { node: Node::Op { op, args }, dtype: DType::F32 };
        // out0 = in0 + in1 ; out1 = in2 * out0
        let k = Kernel {
            domain: vec![8],
            inputs: vec![aval.clone(); 3],
            nodes: vec![load(0), load(1), load(2), op(E::Add, vec![0, 1]), op(E::Mul, vec![2, 3])],
            outputs: vec![
                KOutput { node: 4, kind: OutputKind::Store, aval: aval.clone() },
                KOutput { node: 3, kind: OutputKind::Store, aval: aval.clone() },
            ],
        };
        let o = plan(&k, &[]);
        let (n, out) = (Item::Node, Item::Output);
        assert_eq!(o.items, vec![n(0), n(1), n(3), out(1), n(2), n(4), out(0)]);
        assert_eq!(o.reads_first[1], vec![true, true, false]);
        assert_eq!(o.reads_first[0], vec![true, true, true]);
    }

    #[test]
    fn each_row_function_gets_a_stage_that_reads_earlier_results_from_rows() {
        let aval = AVal::new(DType::F32, [64]);
        let op = |op, args| KNode { node: Node::Op { op, args }, dtype: DType::F32 };
        // n2 = exp in0, n3 = log in1, n4 = n2 + n3, n5 = exp n4; out = n5 + n1
        let k = Kernel {
            domain: vec![64],
            inputs: vec![aval.clone(); 2],
            nodes: vec![
                load(0),
                load(1),
                op(E::Exp, vec![0]),
                op(E::Log, vec![1]),
                op(E::Add, vec![2, 3]),
                op(E::Exp, vec![4]),
                op(E::Add, vec![5, 1]),
            ],
            outputs: vec![KOutput { node: 6, kind: OutputKind::Store, aval: aval.clone() }],
        };
        let rows = [None, None, Some(RowOp::Exp), Some(RowOp::Log), None, Some(RowOp::Exp), None];
        let o = plan(&k, &rows);
        let (n, row) = (Item::Node, Item::Row);
        let stages: Vec<(usize, usize, Vec<Item>)> =
            o.stages.iter().map(|s| (s.node, s.arg, s.items.clone())).collect();
        assert_eq!(stages, vec![(2, 0, vec![n(0)]), (3, 1, vec![n(1)]), (5, 4, vec![row(2), row(3), n(4)])]);
        assert_eq!(o.items, vec![n(1), row(5), n(6), Item::Output(0)]);
        // The stages read in1 before the body writes anything: in place, the
        // output may take in0's memory and in1's.
        assert_eq!(o.reads_first[0], vec![true, true]);
    }
}
