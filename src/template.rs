//! The minijinja environment: strict undefined (a typo is an error, not an empty string),
//! no HTML escaping (we render config files), trailing newlines kept.
//!
//! Errors are built from the error's kind, detail, template name and line only: minijinja's
//! debug dump lists referenced variables *with their values*, which would print secrets.

mod filters;

pub use filters::DerivedHook;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// A template error: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub name: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.name, self.message),
            None => write!(f, "{}: {}", self.name, self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

impl TemplateError {
    fn from_minijinja(fallback_name: &str, e: &minijinja::Error) -> TemplateError {
        // The innermost error carries the real cause (e.g. inside an {% include %}).
        let mut inner: &minijinja::Error = e;
        while let Some(next) =
            std::error::Error::source(inner).and_then(|s| s.downcast_ref::<minijinja::Error>())
        {
            inner = next;
        }
        let what = match inner.detail() {
            Some(d) => format!("{}: {d}", inner.kind()),
            None => inner.kind().to_string(),
        };
        let hint = if inner.kind() == minijinja::ErrorKind::UndefinedError {
            if what.contains("secrets.") {
                "; define it in the env's secrets file or provision's environment (empty counts as missing)"
            } else {
                "; define it under [vars], the env's vars, or use `| default(...)`"
            }
        } else {
            ""
        };
        TemplateError {
            name: inner.name().unwrap_or(fallback_name).to_string(),
            line: inner.line(),
            message: format!("{what}{hint}"),
        }
    }
}

pub struct Templates {
    env: Environment<'static>,
    root: PathBuf,
    derived: filters::HookSlot,
}

impl Templates {
    /// Templates are loaded from paths relative to the project root.
    pub fn new(root: &Path) -> Templates {
        let mut env = Environment::new();
        env.set_loader(minijinja::path_loader(root));
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Needed for the variable name in undefined errors in release builds; we never print
        // the debug dump itself.
        env.set_debug(true);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        let derived = filters::HookSlot::default();
        filters::add_all(&mut env, &derived);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("default syntax is valid"),
        );
        Templates {
            env,
            root: root.to_path_buf(),
            derived,
        }
    }

    /// Tell `hook` each value a filter turned into a form the redactor cannot derive (see
    /// `filters`), so the secrets layer can mask it when it came from a secret.
    pub fn on_derived(&self, hook: DerivedHook) {
        self.derived.set(hook);
    }

    pub fn render_file(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        t.render(ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    pub fn render_str(
        &self,
        name: &str,
        source: &str,
        ctx: &Value,
    ) -> Result<String, TemplateError> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        self.env
            .render_named_str(name, source, ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Evaluate an expression to its value (a `loop` over a variable).
    pub fn eval(&self, name: &str, expr: &str, ctx: &Value) -> Result<Value, TemplateError> {
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        compiled
            .eval(ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Evaluate a `when` expression to a boolean (Jinja truthiness).
    pub fn eval_bool(&self, name: &str, expr: &str, ctx: &Value) -> Result<bool, TemplateError> {
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        let v = compiled
            .eval(ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        Ok(v.is_true())
    }

    /// Top-level variable names a template string refers to.
    pub fn referenced_in_str(
        &self,
        name: &str,
        source: &str,
    ) -> Result<BTreeSet<String>, TemplateError> {
        let t = self
            .env
            .template_from_named_str(name, source)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        Ok(t.undeclared_variables(false).into_iter().collect())
    }

    pub fn referenced_in_expr(
        &self,
        name: &str,
        expr: &str,
    ) -> Result<BTreeSet<String>, TemplateError> {
        self.referenced_in_str(name, &format!("{{{{ {expr} }}}}"))
    }

    pub fn referenced_in_file(&self, name: &str) -> Result<BTreeSet<String>, TemplateError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        Ok(t.undeclared_variables(false).into_iter().collect())
    }

    /// The line of a template file where variable `ident` is first used, for messages.
    pub fn line_of_variable(&self, name: &str, ident: &str) -> Option<usize> {
        let source = std::fs::read_to_string(self.root.join(name)).ok()?;
        line_of_variable(&source, ident)
    }
}

/// First line (1-based) where `ident` is used as a variable inside `{{ }}` or `{% %}`:
/// not inside a string literal, a comment, or as an attribute (`x.ident`).
pub fn line_of_variable(source: &str, ident: &str) -> Option<usize> {
    let b = source.as_bytes();
    let (mut i, mut line) = (0, 1);
    let mut close: Option<&[u8]> = None;
    let mut quote: Option<u8> = None;
    let mut prev = 0u8; // last non-space byte inside the current tag
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
        }
        let Some(end) = close else {
            if b[i..].starts_with(b"{{") || b[i..].starts_with(b"{%") {
                close = Some(if b[i + 1] == b'{' { b"}}" } else { b"%}" });
                prev = 0;
                i += 2;
            } else if b[i..].starts_with(b"{#") {
                close = Some(b"#}");
                i += 2;
            } else {
                i += 1;
            }
            continue;
        };
        if let Some(q) = quote {
            if c == b'\\' && i + 1 < b.len() {
                line += usize::from(b[i + 1] == b'\n');
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
                prev = c;
            }
            i += 1;
            continue;
        }
        if b[i..].starts_with(end) {
            close = None;
            i += end.len();
            continue;
        }
        if end == b"#}" {
            i += 1;
        } else if c == b'"' || c == b'\'' {
            quote = Some(c);
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if &source[start..i] == ident && prev != b'.' {
                return Some(line);
            }
            prev = b'a';
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            prev = b'0';
        } else {
            if !c.is_ascii_whitespace() {
                prev = c;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn undefined_is_an_error_naming_variable_and_line() {
        let t = Templates::new(Path::new("."));
        let e = t
            .render_str(
                "x.j2",
                "a\n{{ app.prot }}",
                &context! { app => context!{ port => 1 } },
            )
            .unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("app.prot"), "{}", e.message);
    }

    #[test]
    fn error_does_not_print_values() {
        let t = Templates::new(Path::new("."));
        let e = t
            .render_str(
                "x.j2",
                "{{ pw }} {{ nope }}",
                &context! { pw => "hunter2-secret" },
            )
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn keeps_trailing_newline_and_does_not_escape() {
        let t = Templates::new(Path::new("."));
        let out = t
            .render_str("x", "<{{ a }}>\n", &context! { a => "&" })
            .unwrap();
        assert_eq!(out, "<&>\n");
    }

    #[test]
    fn finds_the_line_of_a_variable() {
        let src = "# {{ app }} said \"worker_count\"\n{# worker_count #}\n{{ cfg.worker_count }}\n{% if x %}\nw = {{ 'worker_count' }} {{ worker_count | default(1) }}\n{% endif %}\n";
        assert_eq!(line_of_variable(src, "worker_count"), Some(5));
        assert_eq!(line_of_variable(src, "app"), Some(1));
        assert_eq!(line_of_variable(src, "x"), Some(4));
        assert_eq!(line_of_variable(src, "nope"), None);
        assert_eq!(line_of_variable("{{\n  a ~\n  b }}", "b"), Some(3));
    }

    #[test]
    fn shell_quote_makes_one_inert_word() {
        let t = Templates::new(Path::new("."));
        let r = |v: Value| {
            t.render_str("x", "echo {{ v | shell_quote }}", &context! { v => v })
                .unwrap()
        };
        assert_eq!(r(Value::from("v1.2")), "echo v1.2");
        assert_eq!(r(Value::from("$(touch /tmp/x)")), "echo '$(touch /tmp/x)'");
        assert_eq!(r(Value::from("it's")), "echo 'it'\\''s'");
        assert_eq!(r(Value::from("")), "echo ''");
        assert_eq!(r(Value::from(3)), "echo 3");
        // What sh makes of it: the value, as one argument, nothing run.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf '%s|' {}",
                r(Value::from("a b;$(echo hi)'`x`")).trim_start_matches("echo ")
            ))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b;$(echo hi)'`x`|");
    }

    #[test]
    fn when_and_references() {
        let t = Templates::new(Path::new("."));
        assert!(t.eval_bool("w", "x > 1", &context! { x => 2 }).unwrap());
        assert!(
            !t.eval_bool("w", "x is defined and x", &context! {})
                .unwrap()
        );
        let r = t
            .referenced_in_str("s", "{{ a.b }} {% for i in items %}{{ i }}{% endfor %}")
            .unwrap();
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec!["a", "items"]);
    }
}
