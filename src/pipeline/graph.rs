//! From declared stages to a checked graph: names unique, inputs exist and carry what the
//! stage takes, every output used, no loop. All problems are reported at once.
//!
//! The order stages start in is found from the edges (a topological order), never from
//! their kinds: a stage that takes what it gives (`tap`) may sit anywhere its port fits,
//! and several may follow each other, so edges that check out may still form a loop.

use std::collections::{BTreeSet, HashMap};

use super::spec::{SpecError, StageConfig, StageKind, StageSpec};
use crate::formats::output::MuxFormat;

/// What travels on an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// Raw input bytes ([`Chunk`](crate::model::Chunk)).
    Chunks,
    /// Container structure ([`ContainerEvent`](crate::formats::ContainerEvent)).
    Structure,
    /// Container structure with tracks.
    Described,
    /// Packets ([`PacketEvent`](crate::formats::PacketEvent)).
    Packets,
    /// Output fragments ([`Fragment`](crate::model::Fragment)).
    Fragments,
}

impl Port {
    fn describe(self) -> &'static str {
        match self {
            Port::Chunks => "raw input bytes",
            Port::Structure => "container structure",
            Port::Described => "container structure with tracks",
            Port::Packets => "packets",
            Port::Fragments => "output fragments",
        }
    }
}

/// What a stage kind takes and gives.
pub fn ports(kind: StageKind) -> (Option<Port>, Option<Port>) {
    match kind {
        StageKind::Source => (None, Some(Port::Chunks)),
        StageKind::Probe => (Some(Port::Chunks), Some(Port::Structure)),
        StageKind::Codecpar => (Some(Port::Structure), Some(Port::Described)),
        StageKind::Split => (Some(Port::Described), Some(Port::Packets)),
        StageKind::Mux => (Some(Port::Packets), Some(Port::Fragments)),
        StageKind::Tap => (Some(Port::Fragments), Some(Port::Fragments)),
        StageKind::Sink => (Some(Port::Fragments), None),
    }
}

/// The stage that naturally produces what `port` carries.
fn producer_of(port: Port) -> StageKind {
    match port {
        Port::Chunks => StageKind::Source,
        Port::Structure => StageKind::Probe,
        Port::Described => StageKind::Codecpar,
        Port::Packets => StageKind::Split,
        Port::Fragments => StageKind::Mux,
    }
}

/// A checked pipeline.
#[derive(Clone, Debug)]
pub struct Graph {
    /// The stages, as declared.
    pub stages: Vec<StageSpec>,
    /// Index of each stage's input.
    pub inputs: Vec<Option<usize>>,
    /// Stages in an order where every input comes before its consumers (declaration order
    /// where the edges leave a choice).
    pub order: Vec<usize>,
}

impl Graph {
    /// The stages that read stage `i`'s output.
    pub fn consumers(&self, i: usize) -> Vec<usize> {
        (0..self.stages.len()).filter(|&j| self.inputs[j] == Some(i)).collect()
    }

    /// The index of the stage named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// Adds `spec`, a stage that takes and gives what stage `after` gives, between `after`
    /// and the stages that read it. Returns its index. The caller checks the ports and the
    /// name.
    /// The consumers' `spec.input` is renamed too, so that the specs and `inputs` agree.
    pub(crate) fn insert_after(&mut self, after: usize, mut spec: StageSpec) -> usize {
        let new = self.stages.len();
        for (input, consumer) in self.inputs.iter_mut().zip(self.stages.iter_mut()) {
            if *input == Some(after) {
                *input = Some(new);
                consumer.input = Some((spec.name.clone(), 0..0));
            }
        }
        spec.input = Some((self.stages[after].name.clone(), 0..0));
        self.stages.push(spec);
        self.inputs.push(Some(after));
        self.order = topological_order(&self.inputs).expect("a stage put on an edge makes no loop");
        new
    }
}

/// The stages in an order where each comes after its input, the lowest index first where
/// there is a choice; `Err` with the stages on (or behind) a loop.
fn topological_order(inputs: &[Option<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let mut waiting: Vec<usize> = inputs.iter().map(|i| usize::from(i.is_some())).collect();
    let mut ready: BTreeSet<usize> = (0..inputs.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(inputs.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for (j, input) in inputs.iter().enumerate() {
            if *input == Some(i) {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.insert(j);
                }
            }
        }
    }
    if order.len() == inputs.len() {
        Ok(order)
    } else {
        Err((0..inputs.len()).filter(|i| !order.contains(i)).collect())
    }
}

/// Checks `stages`; appends every problem to `errors`.
pub fn build(stages: Vec<StageSpec>, errors: &mut Vec<SpecError>) -> Option<Graph> {
    let before = errors.len();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, s) in stages.iter().enumerate() {
        if let Some(&first) = by_name.get(s.name.as_str()) {
            errors.push(
                SpecError::new(format!("two stages are named '{}'", s.name), Some(s.name_span.clone())).with_help(
                    format!(
                        "the first is the {} stage above; give one of them another name = \"...\"",
                        stages[first].config.kind().name()
                    ),
                ),
            );
        } else {
            by_name.insert(&s.name, i);
        }
    }
    let mut inputs = vec![None; stages.len()];
    for (i, s) in stages.iter().enumerate() {
        let kind = s.config.kind();
        let (takes, _) = ports(kind);
        match (&s.input, takes) {
            (Some((_, span)), None) => {
                errors.push(SpecError::new(format!("a {} stage takes no input", kind.name()), Some(span.clone())));
            }
            (None, None) => {}
            (Some((name, span)), Some(port)) => match by_name.get(name.as_str()) {
                None => errors.push(SpecError::new(format!("no stage is named '{name}'"), Some(span.clone()))),
                Some(&j) if j == i => {
                    errors.push(SpecError::new("a stage cannot read its own output", Some(span.clone())))
                }
                Some(&j) => {
                    check_port(&stages[j], s, port, span.clone(), errors);
                    inputs[i] = Some(j);
                }
            },
            (None, Some(port)) => match (0..i).rev().find(|&j| ports(stages[j].config.kind()).1.is_some()) {
                Some(j) => {
                    check_port(&stages[j], s, port, s.span.clone(), errors);
                    inputs[i] = Some(j);
                }
                None => errors.push(
                    SpecError::new(
                        format!("the {} stage '{}' has nothing to read from", kind.name(), s.name),
                        Some(s.span.clone()),
                    )
                    .with_help(format!("put a {} stage before it", producer_of(port).name())),
                ),
            },
        }
    }
    for (i, s) in stages.iter().enumerate() {
        if ports(s.config.kind()).1.is_some() && !inputs.contains(&Some(i)) {
            errors.push(
                SpecError::new(format!("the output of '{}' goes nowhere", s.name), Some(s.span.clone()))
                    .with_help("add a stage after it, or remove it"),
            );
        }
    }
    if !stages.iter().any(|s| s.config.kind() == StageKind::Source) {
        errors.push(SpecError::new("the pipeline has no source stage", None));
    }
    if !stages.iter().any(|s| s.config.kind() == StageKind::Sink) {
        errors.push(SpecError::new("the pipeline has no sink stage", None));
    }
    let order = match topological_order(&inputs) {
        Ok(order) => order,
        Err(stuck) => {
            // Stuck stages are on a loop or read one; name those on it.
            let on_loop =
                |i: usize| std::iter::successors(inputs[i], |&j| inputs[j]).take(inputs.len()).any(|j| j == i);
            let looped: Vec<usize> = stuck.iter().copied().filter(|&i| on_loop(i)).collect();
            let names: Vec<String> = looped.iter().map(|&i| format!("'{}'", stages[i].name)).collect();
            let first = &stages[looped[0]];
            let span = first.input.as_ref().map_or(first.span.clone(), |(_, span)| span.clone());
            errors.push(
                SpecError::new(format!("stages {} read each other's output in a loop", names.join(", ")), Some(span))
                    .with_help("one of them must read a stage outside the loop"),
            );
            Vec::new()
        }
    };
    let mut stages = stages;
    if errors.len() == before {
        hls_sinks(&mut stages, &inputs, errors);
    }
    (errors.len() == before).then_some(Graph { stages, inputs, order })
}

/// A sink behind a `format = "hls"` mux writes HLS; an HLS sink needs fragmented MP4
/// (`fmp4` or `hls`) from its mux.
fn hls_sinks(stages: &mut [StageSpec], inputs: &[Option<usize>], errors: &mut Vec<SpecError>) {
    for i in 0..stages.len() {
        if stages[i].config.kind() != StageKind::Sink {
            continue;
        }
        // The mux upstream, through taps (a loop was reported already).
        let mux = std::iter::successors(inputs[i], |&j| inputs[j])
            .take(stages.len())
            .find_map(|j| match &stages[j].config {
                StageConfig::Mux(m) => Some((j, m.format)),
                _ => None,
            });
        let StageConfig::Sink(sink) = &mut stages[i].config else { continue };
        match mux {
            Some((_, MuxFormat::Hls)) => sink.hls = true,
            Some((j, format)) if sink.hls && format != MuxFormat::Fmp4 => {
                let msg = format!(
                    "the sink '{}' writes HLS, which needs fragmented MP4, but mux '{}' makes {format:?}",
                    stages[i].name, stages[j].name
                );
                errors.push(
                    SpecError::new(msg, Some(stages[i].span.clone()))
                        .with_help("set format = \"hls\" (or \"fmp4\") on the mux, or write this sink to a file"),
                );
            }
            _ => {}
        }
    }
}

fn check_port(
    from: &StageSpec,
    to: &StageSpec,
    takes: Port,
    span: std::ops::Range<usize>,
    errors: &mut Vec<SpecError>,
) {
    let gives = ports(from.config.kind()).1;
    if gives == Some(takes) {
        return;
    }
    let what = gives.map_or("nothing", Port::describe);
    errors.push(
        SpecError::new(
            format!(
                "the {} stage '{}' takes {}, but '{}' ({}) gives {}",
                to.config.kind().name(),
                to.name,
                takes.describe(),
                from.name,
                from.config.kind().name(),
                what
            ),
            Some(span),
        )
        .with_help(format!("stages run in this order: {}", StageKind::ALL.map(StageKind::name).join(" -> "))),
    );
}

#[cfg(test)]
mod tests {
    use super::super::spec::parse;
    use super::*;

    fn check(text: &str) -> Vec<String> {
        let (stages, mut errors) = parse(text, &[]);
        build(stages, &mut errors);
        errors.into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn fan_out_to_two_sinks() {
        let errors = check(
            r#"stage = [
  { kind = "source", path = "-" }, { kind = "probe" }, { kind = "codecpar-extract" },
  { kind = "packet-split" }, { kind = "mux" },
  { kind = "sink", name = "file", path = "out.mp4" },
  { kind = "sink", name = "pipe", path = "-", input = "mux" },
]"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn wrong_order_and_missing_names_are_all_reported() {
        let errors = check(
            r#"stage = [
  { kind = "source", path = "-" }, { kind = "mux" },
  { kind = "sink", path = "-", input = "nowhere" },
  { kind = "sink", path = "x", name = "sink" },
]"#,
        );
        assert!(errors.iter().any(|e| e.contains("takes packets")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("no stage is named 'nowhere'")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("two stages are named 'sink'")), "{errors:?}");
    }

    #[test]
    fn taps_go_between_mux_and_sink_in_the_order_of_the_edges() {
        let text = r#"stage = [
  { kind = "sink", path = "-", input = "b" },
  { kind = "tap", name = "b", input = "a" },
  { kind = "source", path = "-" }, { kind = "probe" }, { kind = "codecpar-extract" },
  { kind = "packet-split" }, { kind = "mux" },
  { kind = "tap", name = "a", input = "mux" },
]"#;
        let (stages, mut errors) = parse(text, &[]);
        let graph = build(stages, &mut errors).expect("a valid graph");
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = graph.order.iter().map(|&i| graph.stages[i].name.as_str()).collect();
        assert_eq!(names, ["source", "probe", "codecpar-extract", "packet-split", "mux", "a", "b", "sink"]);
    }

    #[test]
    fn a_loop_of_taps_is_an_error() {
        let errors = check(
            r#"stage = [
  { kind = "source", path = "-" }, { kind = "probe" }, { kind = "codecpar-extract" },
  { kind = "packet-split" }, { kind = "mux" }, { kind = "sink", path = "-" },
  { kind = "tap", name = "a", input = "b" },
  { kind = "tap", name = "b", input = "a" },
  { kind = "sink", name = "s2", path = "x", input = "b" },
]"#,
        );
        assert_eq!(errors, ["stages 'a', 'b' read each other's output in a loop"]);
    }

    #[test]
    fn a_stage_inserted_after_another_is_what_its_consumers_name() {
        let text = r#"stage = [
  { kind = "source", path = "-" }, { kind = "probe" }, { kind = "codecpar-extract" },
  { kind = "packet-split" }, { kind = "mux" },
  { kind = "sink", name = "file", path = "out.mp4" },
  { kind = "sink", name = "pipe", path = "-", input = "mux" },
]"#;
        let (stages, mut errors) = parse(text, &[]);
        let mut graph = build(stages, &mut errors).expect("a valid graph");
        let mux = graph.find("mux").unwrap();
        let spec = StageSpec {
            name: "t".into(),
            config: super::super::spec::StageConfig::Tap,
            input: None,
            span: 0..0,
            name_span: 0..0,
        };
        let t = graph.insert_after(mux, spec);
        for sink in ["file", "pipe"] {
            let i = graph.find(sink).unwrap();
            assert_eq!(graph.inputs[i], Some(t));
            assert_eq!(graph.stages[i].input.as_ref().map(|(n, _)| n.as_str()), Some("t"), "{sink}");
        }
        assert_eq!(graph.stages[t].input.as_ref().map(|(n, _)| n.as_str()), Some("mux"));
        assert_eq!(graph.inputs[t], Some(mux));
    }

    #[test]
    fn explicit_inputs_name_earlier_stages() {
        let errors = check(
            r#"stage = [
  { kind = "source", path = "-" },
  { kind = "probe", input = "source" },
  { name = "a", kind = "codecpar-extract", input = "probe" },
  { name = "b", kind = "packet-split", input = "a" },
  { name = "m", kind = "mux", input = "b" },
  { kind = "sink", path = "-" },
]"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }
}
