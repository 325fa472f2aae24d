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

use arrayjit_lower::{Kernel, Node};

/// One step of the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Item {
    Node(usize),
    Output(usize),
}

#[derive(Clone, Debug)]
pub(super) struct Order {
    pub items: Vec<Item>,
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

pub(super) fn plan(k: &Kernel) -> Order {
    let mut total = vec![0usize; k.inputs.len()];
    for n in &k.nodes {
        if let Some(i) = reads(&n.node) {
            total[i] += 1;
        }
    }
    let mut done = vec![false; k.nodes.len()];
    let mut read = vec![0usize; k.inputs.len()];
    let mut items = Vec::with_capacity(k.nodes.len() + k.outputs.len());
    let mut reads_first = vec![Vec::new(); k.outputs.len()];
    let mut outputs: Vec<usize> = (0..k.outputs.len()).collect();
    outputs.sort_by_key(|&o| k.outputs[o].node);
    for o in outputs {
        let mut need = Vec::new();
        let mut stack = vec![k.outputs[o].node];
        while let Some(ni) = stack.pop() {
            if std::mem::replace(&mut done[ni], true) {
                continue;
            }
            need.push(ni);
            stack.extend_from_slice(args(&k.nodes[ni].node));
        }
        // Node order is a topological order.
        need.sort_unstable();
        for ni in need {
            if let Some(i) = reads(&k.nodes[ni].node) {
                read[i] += 1;
            }
            items.push(Item::Node(ni));
        }
        reads_first[o] = read.iter().zip(&total).map(|(r, t)| r == t).collect();
        items.push(Item::Output(o));
    }
    Order { items, reads_first }
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
        let o = plan(&k);
        let (n, out) = (Item::Node, Item::Output);
        assert_eq!(o.items, vec![n(0), n(1), n(3), out(1), n(2), n(4), out(0)]);
        assert_eq!(o.reads_first[1], vec![true, true, false]);
        assert_eq!(o.reads_first[0], vec![true, true, true]);
    }
}
