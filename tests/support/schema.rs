//! docs/events.schema.json and a validator for it (shared by ci_path.rs and event_words.rs):
//! the JSON lines of real runs are checked against the documented schema.

use serde_json::Value;
use std::path::Path;

pub fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the schema is JSON")
}

/// A JSON Schema (2020-12) validator for the keywords docs/events.schema.json uses; any
/// other keyword is refused, so the schema cannot use one that would go unchecked here.
pub struct Validator<'a> {
    pub root: &'a Value,
}

const ANNOTATIONS: [&str; 5] = ["$schema", "$id", "title", "description", "$defs"];

impl Validator<'_> {
    pub fn check(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        let obj = schema
            .as_object()
            .unwrap_or_else(|| panic!("schema at {at} is not an object"));
        for (k, s) in obj {
            match k.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "$ref" => {
                    let name = s.as_str().unwrap().strip_prefix("#/$defs/").unwrap();
                    let target = &self.root["$defs"][name];
                    assert!(!target.is_null(), "dangling $ref {name}");
                    self.check(target, v, at)?;
                }
                "type" => {
                    let types: Vec<&str> = match s {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
                        _ => panic!("bad type at {at}"),
                    };
                    let ok = types.iter().any(|t| match *t {
                        "object" => v.is_object(),
                        "array" => v.is_array(),
                        "string" => v.is_string(),
                        "integer" => v.is_i64() || v.is_u64(),
                        "number" => v.is_number(),
                        "boolean" => v.is_boolean(),
                        "null" => v.is_null(),
                        other => panic!("unknown type {other}"),
                    });
                    if !ok {
                        return Err(format!("{at}: {v} is not of type {types:?}"));
                    }
                }
                "const" => {
                    if v != s {
                        return Err(format!("{at}: {v} is not {s}"));
                    }
                }
                "enum" => {
                    if !s.as_array().unwrap().contains(v) {
                        return Err(format!("{at}: {v} is not one of {s}"));
                    }
                }
                "minimum" => {
                    if v.as_f64().is_some_and(|n| n < s.as_f64().unwrap()) {
                        return Err(format!("{at}: {v} < {s}"));
                    }
                }
                "required" => {
                    for r in s.as_array().unwrap() {
                        if v.is_object() && v.get(r.as_str().unwrap()).is_none() {
                            return Err(format!("{at}: missing required `{r}` in {v}"));
                        }
                    }
                }
                "properties" => {
                    if let Some(o) = v.as_object() {
                        for (name, sub) in s.as_object().unwrap() {
                            if let Some(x) = o.get(name) {
                                self.check(sub, x, &format!("{at}.{name}"))?;
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let (Some(o), Some(false)) = (v.as_object(), s.as_bool()) {
                        let known = obj["properties"].as_object().unwrap();
                        if let Some(extra) = o.keys().find(|k| !known.contains_key(*k)) {
                            return Err(format!("{at}: unexpected field `{extra}` in {v}"));
                        }
                    }
                }
                "items" => {
                    if let Some(a) = v.as_array() {
                        for (i, x) in a.iter().enumerate() {
                            self.check(s, x, &format!("{at}[{i}]"))?;
                        }
                    }
                }
                "oneOf" => {
                    let errs: Vec<String> = s
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|sub| self.check(sub, v, at).err())
                        .collect();
                    let matched = s.as_array().unwrap().len() - errs.len();
                    if matched != 1 {
                        return Err(format!(
                            "{at}: {v} matches {matched} of oneOf (exactly 1 wanted){}",
                            if matched == 0 {
                                format!("; closest: {}", shortest(&errs))
                            } else {
                                String::new()
                            }
                        ));
                    }
                }
                other => {
                    panic!("the schema uses `{other}` (at {at}), which this test does not check")
                }
            }
        }
        Ok(())
    }
}

fn shortest(errs: &[String]) -> String {
    errs.iter()
        .filter(|e| !e.contains("is not \""))
        .min_by_key(|e| e.len())
        .or(errs.first())
        .cloned()
        .unwrap_or_default()
}

pub fn validate_lines(schema: &Value, stdout: &str) -> usize {
    let v = Validator { root: schema };
    let mut n = 0;
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if let Err(e) = v.check(schema, &value, "$") {
            panic!("event does not match docs/events.schema.json: {e}\nline: {line}");
        }
        n += 1;
    }
    n
}
