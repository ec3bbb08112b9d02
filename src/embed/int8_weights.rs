//! Keeps the model's int8 weights int8 in memory.
//!
//! The model stores each weight as `Mul(Cast(int8 tensor), float scale)`. ONNX Runtime's
//! constant folding turns every such pair into a float copy at load (about 120 MiB resident
//! for this model); without folding, every run converts all the weights again (half the speed).
//! This rewrite hands the int8 data to kernels that read it directly, so neither happens:
//!
//! - `MatMul(x, Mul(Cast(q[K,N]), s[1,N]))` becomes the contrib op `MatMulNBits` with 8-bit
//!   blocks (`q + 128` stored as unsigned with zero point 128, the column's scale repeated for
//!   each block). With `accuracy_level` 0 it computes in float from exactly the same weight
//!   values, so the vectors match the original graph's to float rounding.
//! - `Gather(Mul(Cast(q[V,D]), s[V,1]), ids)` (the embedding tables) becomes a gather of the
//!   int8 rows and of their scales, then the same Cast and Mul on the gathered rows only.
//!
//! [`MatMulWeights::FloatCopies`] rewrites the tables only, for the faster session the embedder
//! loads while it has a backlog (the matrix weights then fold into float copies as before).
//!
//! The rewrite works on the protobuf wire format and copies every field it does not rewrite
//! byte for byte, so nothing it does not understand is lost. A pattern that does not match
//! exactly (other types, shapes, shared intermediates, external data) is left as it was.

use std::collections::{BTreeMap, HashMap, HashSet};

use prost::bytes::Buf;
use prost::encoding::{decode_varint, encode_varint, WireType};

/// Weights per quantisation block of a `MatMulNBits` weight (a power of two, as it requires).
const BLOCK: usize = 128;
const CONTRIB_DOMAIN: &str = "com.microsoft";
// onnx.proto TensorProto.DataType
const FLOAT: u64 = 1;
const UINT8: u64 = 2;
const INT8: u64 = 3;

/// What becomes of the matrix weights (the embedding tables are always gathered int8: a float
/// copy of the word table alone is 45 MiB, and gathering rows first costs nothing measurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatMulWeights {
    /// Read int8 by `MatMulNBits`: the smallest footprint.
    KeepInt8,
    /// Left as they are, so ONNX Runtime folds them into float copies at load: about 100 MiB
    /// more with its pre-packed copies, and 10-20 % faster (plain float GEMM).
    FloatCopies,
}

/// The rewritten model and how many weights it rewrote.
pub struct Rewritten {
    pub model: Vec<u8>,
    pub matmuls: usize,
    pub gathers: usize,
}

type Result<T> = std::result::Result<T, String>;

/// One protobuf field: its number, its whole encoding (key included) and, for a
/// length-delimited field, its payload; for a varint, its value.
#[derive(Clone, Copy)]
struct Field<'a> {
    number: u32,
    wire: WireType,
    raw: &'a [u8],
    payload: &'a [u8],
    varint: u64,
}

fn fields(mut buf: &[u8]) -> Result<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let start = buf;
        let key = decode_varint(&mut buf).map_err(|e| e.to_string())?;
        let number = (key >> 3) as u32;
        let (mut payload, mut varint): (&[u8], u64) = (&[], 0);
        let wire = WireType::try_from(key & 7).map_err(|e| e.to_string())?;
        match wire {
            WireType::Varint => varint = decode_varint(&mut buf).map_err(|e| e.to_string())?,
            WireType::SixtyFourBit => skip(&mut buf, 8)?,
            WireType::ThirtyTwoBit => skip(&mut buf, 4)?,
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(|e| e.to_string())? as usize;
                let before = buf;
                skip(&mut buf, len)?;
                payload = &before[..len];
            }
            WireType::StartGroup | WireType::EndGroup => return Err("groups are not used by ONNX".into()),
        }
        let used = start.len() - buf.len();
        out.push(Field { number, wire, raw: &start[..used], payload, varint });
    }
    Ok(out)
}

fn skip(buf: &mut &[u8], n: usize) -> Result<()> {
    if buf.remaining() < n {
        return Err("truncated protobuf".into());
    }
    buf.advance(n);
    Ok(())
}

fn text(f: &Field) -> Result<String> {
    String::from_utf8(f.payload.to_vec()).map_err(|_| "a string field is not UTF-8".to_string())
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    encode_varint(u64::from(number) << 3 | WireType::LengthDelimited as u64, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, number: u32, value: u64) {
    encode_varint(u64::from(number) << 3 | WireType::Varint as u64, out);
    encode_varint(value, out);
}

/// The parts of a NodeProto the rewrite reads.
struct Node<'a> {
    raw: &'a [u8],
    inputs: Vec<String>,
    outputs: Vec<String>,
    name: String,
    op_type: String,
    domain: String,
    /// INT attributes by name (`to` of a Cast, `axis` of a Gather).
    ints: HashMap<String, i64>,
}

impl<'a> Node<'a> {
    fn parse(raw: &'a [u8], payload: &'a [u8]) -> Result<Self> {
        let mut node = Node {
            raw,
            inputs: vec![],
            outputs: vec![],
            name: String::new(),
            op_type: String::new(),
            domain: String::new(),
            ints: HashMap::new(),
        };
        for f in fields(payload)? {
            match f.number {
                1 => node.inputs.push(text(&f)?),
                2 => node.outputs.push(text(&f)?),
                3 => node.name = text(&f)?,
                4 => node.op_type = text(&f)?,
                7 => node.domain = text(&f)?,
                5 => {
                    let (mut name, mut int) = (String::new(), None);
                    for a in fields(f.payload)? {
                        match a.number {
                            1 => name = text(&a)?,
                            3 => int = Some(a.varint as i64),
                            _ => {}
                        }
                    }
                    if let Some(i) = int {
                        node.ints.insert(name, i);
                    }
                }
                _ => {}
            }
        }
        Ok(node)
    }

    fn is(&self, op_type: &str) -> bool {
        self.op_type == op_type && (self.domain.is_empty() || self.domain == "ai.onnx")
    }
}

/// The parts of an initializer (TensorProto) the rewrite reads; only raw_data or packed
/// float_data (both little-endian bytes), decoded only when a rewrite needs the values.
struct Tensor<'a> {
    dims: Vec<i64>,
    data_type: u64,
    raw_data: Option<&'a [u8]>,
    float_data: Option<&'a [u8]>,
}

impl<'a> Tensor<'a> {
    fn parse(payload: &'a [u8]) -> Result<(String, Self)> {
        let mut name = String::new();
        let mut t = Tensor { dims: vec![], data_type: 0, raw_data: None, float_data: None };
        for f in fields(payload)? {
            match f.number {
                1 if f.wire == WireType::Varint => t.dims.push(f.varint as i64),
                1 => {
                    let mut packed = f.payload;
                    while !packed.is_empty() {
                        t.dims.push(decode_varint(&mut packed).map_err(|e| e.to_string())? as i64);
                    }
                }
                2 => t.data_type = f.varint,
                4 if f.wire == WireType::LengthDelimited => t.float_data = Some(f.payload),
                8 => name = text(&f)?,
                9 => t.raw_data = Some(f.payload),
                // external data, segments: leave such a tensor alone
                3 | 13 | 14 => t.data_type = u64::MAX,
                _ => {}
            }
        }
        Ok((name, t))
    }

    fn len(&self) -> usize {
        self.dims.iter().map(|&d| d.max(0) as usize).product()
    }

    /// The int8 values, when this is a complete raw int8 tensor.
    fn int8s(&self) -> Option<&'a [u8]> {
        self.raw_data.filter(|r| self.data_type == INT8 && r.len() == self.len())
    }

    fn float_values(&self) -> Option<Vec<f32>> {
        let bytes =
            self.raw_data.or(self.float_data).filter(|b| self.data_type == FLOAT && b.len() == 4 * self.len())?;
        Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}

fn tensor_bytes(name: &str, dims: &[usize], data_type: u64, raw: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(raw.len() + name.len() + 32);
    for &d in dims {
        put_varint(&mut t, 1, d as u64);
    }
    put_varint(&mut t, 2, data_type);
    put_bytes(&mut t, 8, name.as_bytes());
    put_bytes(&mut t, 9, raw);
    t
}

fn node_bytes(
    name: &str,
    op_type: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    ints: &[(&str, i64)],
) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        put_bytes(&mut n, 1, i.as_bytes());
    }
    for o in outputs {
        put_bytes(&mut n, 2, o.as_bytes());
    }
    put_bytes(&mut n, 3, name.as_bytes());
    put_bytes(&mut n, 4, op_type.as_bytes());
    for (attr, value) in ints {
        let mut a = Vec::new();
        put_bytes(&mut a, 1, attr.as_bytes());
        put_varint(&mut a, 3, *value as u64);
        put_varint(&mut a, 20, 2); // AttributeProto.AttributeType.INT
        put_bytes(&mut n, 5, &a);
    }
    if !domain.is_empty() {
        put_bytes(&mut n, 7, domain.as_bytes());
    }
    n
}

/// A weight written as `Mul(Cast(int8 initializer), float initializer)`, used only by one node.
struct Dequantised<'a> {
    cast: usize,
    mul: usize,
    q_name: String,
    scale_name: String,
    q: &'a Tensor<'a>,
    scale: &'a Tensor<'a>,
}

struct Graph<'a> {
    nodes: Vec<Node<'a>>,
    tensors: HashMap<String, Tensor<'a>>,
    producer: HashMap<String, usize>,
    uses: HashMap<String, usize>,
}

impl<'a> Graph<'a> {
    /// The dequantised weight feeding `value`, if it is one that nothing else reads.
    fn dequantised(&'a self, value: &str) -> Option<Dequantised<'a>> {
        let only_here = |v: &str| self.uses.get(v) == Some(&1);
        let mul = *self.producer.get(value)?;
        if !self.nodes[mul].is("Mul") || !only_here(value) || self.nodes[mul].inputs.len() != 2 {
            return None;
        }
        let m = &self.nodes[mul];
        let (cast_out, scale_name) = if self.tensors.contains_key(&m.inputs[1]) {
            (&m.inputs[0], &m.inputs[1])
        } else {
            (&m.inputs[1], &m.inputs[0])
        };
        let cast = *self.producer.get(cast_out)?;
        let c = &self.nodes[cast];
        if !c.is("Cast") || c.ints.get("to") != Some(&(FLOAT as i64)) || !only_here(cast_out) {
            return None;
        }
        let q_name = c.inputs.first()?;
        let q = self.tensors.get(q_name)?;
        let scale = self.tensors.get(scale_name)?;
        q.int8s()?;
        Some(Dequantised { cast, mul, q_name: q_name.clone(), scale_name: scale_name.clone(), q, scale })
    }
}

/// The new nodes and initializers that replace one node.
struct Replacement {
    nodes: Vec<Vec<u8>>,
    tensors: Vec<Vec<u8>>,
    removed: [usize; 2],
    /// Initializers only the replaced node read.
    dropped: Vec<String>,
}

fn matmul_nbits(node: &Node, w: &Dequantised) -> Option<Replacement> {
    let [k, n] = w.q.dims[..] else { return None };
    let (k, n) = (usize::try_from(k).ok()?, usize::try_from(n).ok()?);
    let scales = w.scale.float_values()?;
    if k == 0 || n == 0 || scales.len() != n || !matches!(w.scale.dims[..], [1, _] | [_]) {
        return None;
    }
    let q = w.q.int8s()?;
    let blocks = k.div_ceil(BLOCK);
    // [N, blocks, BLOCK] unsigned, zero point 128; padding is 128, i.e. weight 0
    let mut b = vec![128u8; n * blocks * BLOCK];
    for row in 0..k {
        for col in 0..n {
            b[col * blocks * BLOCK + row] = (q[row * n + col] as i8 as i16 + 128) as u8;
        }
    }
    let s: Vec<u8> = scales.iter().flat_map(|&v| std::iter::repeat_n(v.to_le_bytes(), blocks)).flatten().collect();
    let (b_name, s_name) = (format!("{}_q8_weight", node.name), format!("{}_q8_scale", node.name));
    let attrs = [("K", k as i64), ("N", n as i64), ("bits", 8), ("block_size", BLOCK as i64), ("accuracy_level", 0)];
    let new = node_bytes(
        &format!("{}_q8", node.name),
        "MatMulNBits",
        CONTRIB_DOMAIN,
        &[&node.inputs[0], &b_name, &s_name],
        &[&node.outputs[0]],
        &attrs,
    );
    Some(Replacement {
        nodes: vec![new],
        tensors: vec![
            tensor_bytes(&b_name, &[n, blocks, BLOCK], UINT8, &b),
            tensor_bytes(&s_name, &[n * blocks], FLOAT, &s),
        ],
        removed: [w.cast, w.mul],
        dropped: vec![w.q_name.clone(), w.scale_name.clone()],
    })
}

fn gather_rows(node: &Node, w: &Dequantised) -> Option<Replacement> {
    let ([_, _], [_, 1]) = (&w.q.dims[..], &w.scale.dims[..]) else { return None };
    if w.scale.dims[0] != w.q.dims[0] || w.scale.float_values().is_none() || node.ints.get("axis").unwrap_or(&0) != &0 {
        return None;
    }
    let (ids, out, name) = (node.inputs[1].as_str(), node.outputs[0].as_str(), node.name.as_str());
    let (q_rows, s_rows, f_rows) = (format!("{out}_q8_rows"), format!("{out}_q8_scales"), format!("{out}_q8_float"));
    let nodes = vec![
        node_bytes(&format!("{name}_q8_rows"), "Gather", "", &[&w.q_name, ids], &[&q_rows], &[("axis", 0)]),
        node_bytes(&format!("{name}_q8_scales"), "Gather", "", &[&w.scale_name, ids], &[&s_rows], &[("axis", 0)]),
        node_bytes(&format!("{name}_q8_cast"), "Cast", "", &[&q_rows], &[&f_rows], &[("to", FLOAT as i64)]),
        node_bytes(&format!("{name}_q8_mul"), "Mul", "", &[&f_rows, &s_rows], &[out], &[]),
    ];
    // the int8 table and its scales stay: the new gathers read them
    Some(Replacement { nodes, tensors: vec![], removed: [w.cast, w.mul], dropped: vec![] })
}

fn rewrite_graph(payload: &[u8], matmul_weights: MatMulWeights) -> Result<(Vec<u8>, usize, usize)> {
    let graph_fields = fields(payload)?;
    let mut nodes = Vec::new();
    let mut tensors = HashMap::new();
    // initializer names in file order, for the copy below
    let mut initializers = Vec::new();
    let mut graph_outputs = Vec::new();
    for f in &graph_fields {
        match f.number {
            1 => nodes.push(Node::parse(f.raw, f.payload)?),
            5 => {
                let (name, t) = Tensor::parse(f.payload)?;
                initializers.push(name.clone());
                tensors.insert(name, t);
            }
            12 => {
                if let Some(name) = fields(f.payload)?.iter().find(|v| v.number == 1) {
                    graph_outputs.push(text(name)?);
                }
            }
            _ => {}
        }
    }
    let mut producer = HashMap::new();
    let mut uses: HashMap<String, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.outputs {
            producer.insert(o.clone(), i);
        }
        for v in &n.inputs {
            *uses.entry(v.clone()).or_default() += 1;
        }
    }
    for v in graph_outputs {
        *uses.entry(v).or_default() += 1;
    }
    let graph = Graph { nodes, tensors, producer, uses };

    // ordered by node, so the appended initializers (and so the bytes) are the same every run
    let mut replacements: BTreeMap<usize, Replacement> = BTreeMap::new();
    let (mut matmuls, mut gathers) = (0, 0);
    for (i, node) in graph.nodes.iter().enumerate() {
        let replacement = if node.outputs.len() != 1 {
            None
        } else if node.is("MatMul") && node.inputs.len() == 2 && matmul_weights == MatMulWeights::KeepInt8 {
            graph.dequantised(&node.inputs[1]).and_then(|w| matmul_nbits(node, &w)).inspect(|_| matmuls += 1)
        } else if node.is("Gather") && node.inputs.len() == 2 {
            graph.dequantised(&node.inputs[0]).and_then(|w| gather_rows(node, &w)).inspect(|_| gathers += 1)
        } else {
            None
        };
        if let Some(r) = replacement {
            replacements.insert(i, r);
        }
    }
    let removed: HashSet<usize> = replacements.values().flat_map(|r| r.removed).collect();
    let dropped: HashSet<&str> = replacements
        .values()
        .flat_map(|r| r.dropped.iter().map(String::as_str))
        .filter(|name| graph.uses.get(*name) == Some(&1))
        .collect();

    let mut out = Vec::with_capacity(payload.len() + payload.len() / 8);
    let (mut nodes_seen, mut initializers) = (0..graph.nodes.len(), initializers.iter());
    for f in &graph_fields {
        match f.number {
            1 => {
                let i = nodes_seen.next().expect("one parsed node per node field");
                if let Some(r) = replacements.get(&i) {
                    r.nodes.iter().for_each(|n| put_bytes(&mut out, 1, n));
                } else if !removed.contains(&i) {
                    out.extend_from_slice(graph.nodes[i].raw);
                }
            }
            5 => {
                let name = initializers.next().expect("one parsed initializer per initializer field");
                if !dropped.contains(name.as_str()) {
                    out.extend_from_slice(f.raw);
                }
            }
            _ => out.extend_from_slice(f.raw),
        }
    }
    for r in replacements.values() {
        r.tensors.iter().for_each(|t| put_bytes(&mut out, 5, t));
    }
    Ok((out, matmuls, gathers))
}

/// Rewrites a serialised ModelProto; `matmuls` and `gathers` are 0 when nothing matched (the
/// model is then returned as it was).
pub fn keep_weights_int8(model: &[u8], matmul_weights: MatMulWeights) -> Result<Rewritten> {
    let top = fields(model)?;
    let graph = top.iter().find(|f| f.number == 7).ok_or("the model has no graph")?;
    let (new_graph, matmuls, gathers) = rewrite_graph(graph.payload, matmul_weights)?;
    if matmuls == 0 && gathers == 0 {
        return Ok(Rewritten { model: model.to_vec(), matmuls, gathers });
    }
    let mut has_contrib = false;
    for f in top.iter().filter(|f| f.number == 8) {
        for g in fields(f.payload)? {
            has_contrib |= g.number == 1 && g.payload == CONTRIB_DOMAIN.as_bytes();
        }
    }
    let mut out = Vec::with_capacity(model.len() + new_graph.len() - graph.payload.len());
    for f in &top {
        match f.number {
            7 => put_bytes(&mut out, 7, &new_graph),
            _ => out.extend_from_slice(f.raw),
        }
    }
    if !has_contrib {
        let mut opset = Vec::new();
        put_bytes(&mut opset, 1, CONTRIB_DOMAIN.as_bytes());
        put_varint(&mut opset, 2, 1);
        put_bytes(&mut out, 8, &opset);
    }
    Ok(Rewritten { model: out, matmuls, gathers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(keep_weights_int8(&[0x0a, 0xff, 0xff, 0x01], MatMulWeights::KeepInt8).is_err());
        assert!(keep_weights_int8(b"", MatMulWeights::KeepInt8).is_err(), "no graph");
    }

    #[test]
    fn a_model_without_the_pattern_comes_back_unchanged() {
        let mut graph = Vec::new();
        put_bytes(&mut graph, 1, &node_bytes("relu", "Relu", "", &["x"], &["y"], &[]));
        let mut model = Vec::new();
        put_varint(&mut model, 1, 8);
        put_bytes(&mut model, 7, &graph);
        let r = keep_weights_int8(&model, MatMulWeights::KeepInt8).unwrap();
        assert_eq!((r.matmuls, r.gathers), (0, 0));
        assert!(r.model == model);
    }

    #[test]
    fn fields_round_trip_byte_for_byte() {
        let mut buf = Vec::new();
        put_varint(&mut buf, 1, 300);
        put_bytes(&mut buf, 2, b"abc");
        let parsed = fields(&buf).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].varint, 300);
        assert_eq!(parsed[1].payload, b"abc");
        assert_eq!(parsed.iter().flat_map(|f| f.raw.iter().copied()).collect::<Vec<_>>(), buf);
    }
}
