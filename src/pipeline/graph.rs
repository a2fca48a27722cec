//! From declared stages to a checked graph: names unique, inputs exist and carry what the
//! stage takes, every output used. All problems are reported at once. Each edge goes one
//! step along source -> probe -> ... -> sink, so a graph whose edges check out has no cycle.

use std::collections::HashMap;

use super::spec::{SpecError, StageKind, StageSpec};

/// What travels on an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Chunks,
    Structure,
    Described,
    Packets,
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
    pub stages: Vec<StageSpec>,
    /// Index of each stage's input.
    pub inputs: Vec<Option<usize>>,
    /// Stages in an order where every input comes before its consumers.
    pub order: Vec<usize>,
}

impl Graph {
    pub fn consumers(&self, i: usize) -> Vec<usize> {
        (0..self.stages.len()).filter(|&j| self.inputs[j] == Some(i)).collect()
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
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
    // Edges only go from one kind to the next, so ordering by kind orders every input first.
    let mut order: Vec<usize> = (0..stages.len()).collect();
    order.sort_by_key(|&i| StageKind::ALL.iter().position(|&k| k == stages[i].config.kind()));
    (errors.len() == before).then_some(Graph { stages, inputs, order })
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
