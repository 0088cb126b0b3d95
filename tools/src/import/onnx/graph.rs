//! The graph as a whole: names, the one input and one output, the nodes the output depends on
//! (dead nodes are ignored), and an order to evaluate them in. ONNX requires nodes to be listed
//! in topological order (IR spec, "Graphs"); files that break the rule are accepted when an
//! order exists, and cycles are an error, found without recursion.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::proto::{GraphProto, NodeProto, TensorProto, ValueInfoProto};
use super::MAX_NODES;

/// `node 5 'LSTM_0' (LSTM)`, or `node 5 (LSTM)` for an unnamed node: the location in errors.
pub(super) fn node_location(index: usize, node: &NodeProto) -> String {
    if node.name().is_empty() {
        format!("node {index} ({})", node.op_type())
    } else {
        format!("node {index} '{}' ({})", node.name(), node.op_type())
    }
}

/// A checked view of a graph.
pub(super) struct Graph<'a> {
    pub nodes: &'a [NodeProto],
    pub initializers: HashMap<&'a str, &'a TensorProto>,
    pub input: &'a ValueInfoProto,
    pub output: &'a ValueInfoProto,
    /// The nodes the output depends on, in an order where every node follows its inputs.
    pub order: Vec<usize>,
}

/// An error about the graph: a location (`None` for the whole graph) and a message.
pub(super) type GraphError = (Option<String>, String);

impl<'a> Graph<'a> {
    /// Checks names, finds the live nodes and orders them.
    ///
    /// # Errors
    /// Too many nodes, duplicate names, not exactly one input and one output, a name nothing
    /// provides, a cycle, or an output that does not depend on the input.
    pub(super) fn new(graph: &'a GraphProto) -> Result<Self, GraphError> {
        let nodes = graph.node.as_slice();
        if nodes.len() > MAX_NODES {
            return Err((
                None,
                format!(
                    "the graph has {} nodes, above the limit of {MAX_NODES} for a recurrent stack",
                    nodes.len()
                ),
            ));
        }
        let mut initializers = HashMap::new();
        for t in &graph.initializer {
            // ONNX IR: `data_location = EXTERNAL` (1) or `external_data` entries keep the
            // values in another file; this importer reads one self-contained file.
            if t.data_location == Some(1) || !t.external_data.is_empty() {
                let file = t
                    .external_data
                    .iter()
                    .find(|e| e.key() == "location")
                    .map_or("another file", |e| e.value());
                return Err((
                    Some(format!("initializer '{}'", t.name())),
                    format!("keeps its values in external data ({file}); only self-contained .onnx files are supported: re-save the model with onnx.save_model(model, path, save_as_external_data=False)"),
                ));
            }
            if initializers.insert(t.name(), t).is_some() {
                return Err((None, format!("two initializers are named '{}'", t.name())));
            }
        }
        // Before IR 4 graph inputs also listed the initializers; the model's real input is
        // the one that is not an initializer.
        let inputs: Vec<&ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !initializers.contains_key(i.name()))
            .collect();
        let input = match inputs.as_slice() {
            [one] => *one,
            _ => {
                let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
                return Err((
                    None,
                    format!(
                        "the graph has {} inputs {names:?}; a recurrent stack has exactly one (the [batch, time, features] sequence)",
                        names.len()
                    ),
                ));
            }
        };
        let output = match graph.output.as_slice() {
            [one] => one,
            outputs => {
                let names: Vec<&str> = outputs.iter().map(|o| o.name()).collect();
                return Err((
                    None,
                    format!(
                        "the graph has {} outputs {names:?}; exactly one is supported",
                        names.len()
                    ),
                ));
            }
        };

        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            for out in node.output.iter().filter(|o| !o.is_empty()) {
                let at = Some(node_location(i, node));
                if producer.insert(out.as_str(), i).is_some() {
                    return Err((
                        at,
                        format!("output '{out}' is also written by another node; ONNX names each value once"),
                    ));
                }
                if initializers.contains_key(out.as_str()) || out == input.name() {
                    return Err((
                        at,
                        format!(
                            "output '{out}' has the name of an initializer or of the graph input"
                        ),
                    ));
                }
            }
        }
        let provided = |name: &str| {
            producer.contains_key(name) || initializers.contains_key(name) || name == input.name()
        };
        if !provided(output.name()) {
            return Err((
                None,
                format!(
                    "the graph output '{}' is not written by any node",
                    output.name()
                ),
            ));
        }

        // Live nodes: everything the output depends on (iterative, no recursion).
        let mut live: BTreeSet<usize> = BTreeSet::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack: Vec<&str> = vec![output.name()];
        let mut reads_input = output.name() == input.name();
        while let Some(name) = stack.pop() {
            if !seen.insert(name) {
                continue;
            }
            if name == input.name() {
                reads_input = true;
            }
            if let Some(&k) = producer.get(name) {
                if live.insert(k) {
                    for inp in nodes[k].input.iter().filter(|s| !s.is_empty()) {
                        if !provided(inp) {
                            return Err((
                                Some(node_location(k, &nodes[k])),
                                format!("reads '{inp}', which no node, initializer or graph input provides"),
                            ));
                        }
                        stack.push(inp);
                    }
                }
            }
        }
        if !reads_input {
            return Err((
                None,
                format!(
                    "the graph output '{}' does not depend on the graph input '{}'",
                    output.name(),
                    input.name()
                ),
            ));
        }

        // Kahn's algorithm over live nodes, lowest index first so well-formed files keep
        // their own order.
        let mut waiting: HashMap<usize, usize> = HashMap::new();
        let mut consumers: HashMap<usize, Vec<usize>> = HashMap::new();
        for &k in &live {
            let mut n = 0;
            for inp in nodes[k].input.iter().filter(|s| !s.is_empty()) {
                if let Some(&p) = producer.get(inp.as_str()) {
                    n += 1;
                    consumers.entry(p).or_default().push(k);
                }
            }
            waiting.insert(k, n);
        }
        let mut ready: BTreeSet<usize> = waiting
            .iter()
            .filter(|(_, &n)| n == 0)
            .map(|(&k, _)| k)
            .collect();
        let mut order = Vec::with_capacity(live.len());
        while let Some(k) = ready.pop_first() {
            order.push(k);
            for &c in consumers.get(&k).map(Vec::as_slice).unwrap_or_default() {
                if let Some(n) = waiting.get_mut(&c) {
                    *n -= 1;
                    if *n == 0 {
                        ready.insert(c);
                    }
                }
            }
        }
        if order.len() < live.len() {
            let placed: HashSet<usize> = order.iter().copied().collect();
            let stuck = live
                .iter()
                .copied()
                .find(|k| !placed.contains(k))
                .unwrap_or_default();
            return Err((
                Some(node_location(stuck, &nodes[stuck])),
                "is part of a cycle: its inputs depend on its own output".into(),
            ));
        }
        Ok(Self {
            nodes,
            initializers,
            input,
            output,
            order,
        })
    }
}
