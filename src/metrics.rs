//! Counters of outcomes by reason, exposed in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
}

impl Metrics {
    pub fn increment(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *counters.entry((name, labels)).or_insert(0) += 1;
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters
            .iter()
            .filter(|((n, l), _)| {
                *n == name
                    && l.len() == labels.len()
                    && l.iter()
                        .zip(labels)
                        .all(|((k1, v1), (k2, v2))| k1 == k2 && v1 == v2)
            })
            .map(|(_, count)| *count)
            .sum()
    }

    /// Every counter, plus the given gauges, in the Prometheus text format.
    pub fn render(&self, gauges: &[(&str, &str, i64)]) -> String {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), count) in counters.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {count}", labels.join(","));
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_label_and_renders() {
        let m = Metrics::default();
        m.increment("x_total", &[("outcome", "stored")]);
        m.increment("x_total", &[("outcome", "stored")]);
        m.increment(
            "x_total",
            &[("outcome", "rejected"), ("code", "INVALID_\"SIG")],
        );
        assert_eq!(m.get("x_total", &[("outcome", "stored")]), 2);
        let text = m.render(&[("g", "a gauge", 5)]);
        assert!(text.contains("x_total{outcome=\"stored\"} 2"), "{text}");
        assert!(text.contains("code=\"INVALID_\\\"SIG\""), "{text}");
        assert!(text.contains("\ng 5\n"), "{text}");
    }
}
