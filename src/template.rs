//! The minijinja environment: strict undefined (a typo is an error, not an empty string),
//! no HTML escaping (we render config files), trailing newlines kept.
//!
//! Errors are built from the error's kind, detail, template name and line only: minijinja's
//! debug dump lists referenced variables *with their values*, which would print secrets.

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

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
        while let Some(next) = std::error::Error::source(inner).and_then(|s| s.downcast_ref::<minijinja::Error>()) {
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
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("default syntax is valid"),
        );
        Templates { env }
    }

    pub fn render_file(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        let t = self.env.get_template(name).map_err(|e| TemplateError::from_minijinja(name, &e))?;
        t.render(ctx).map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    pub fn render_str(&self, name: &str, source: &str, ctx: &Value) -> Result<String, TemplateError> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        self.env
            .render_named_str(name, source, ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Evaluate a `when` expression to a boolean (Jinja truthiness).
    pub fn eval_bool(&self, name: &str, expr: &str, ctx: &Value) -> Result<bool, TemplateError> {
        let compiled = self.env.compile_expression(expr).map_err(|e| TemplateError::from_minijinja(name, &e))?;
        let v = compiled.eval(ctx).map_err(|e| TemplateError::from_minijinja(name, &e))?;
        Ok(v.is_true())
    }

    /// Top-level variable names a template string refers to.
    pub fn referenced_in_str(&self, name: &str, source: &str) -> Result<BTreeSet<String>, TemplateError> {
        let t = self
            .env
            .template_from_named_str(name, source)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        Ok(t.undeclared_variables(false).into_iter().collect())
    }

    pub fn referenced_in_expr(&self, name: &str, expr: &str) -> Result<BTreeSet<String>, TemplateError> {
        self.referenced_in_str(name, &format!("{{{{ {expr} }}}}"))
    }

    pub fn referenced_in_file(&self, name: &str) -> Result<BTreeSet<String>, TemplateError> {
        let t = self.env.get_template(name).map_err(|e| TemplateError::from_minijinja(name, &e))?;
        Ok(t.undeclared_variables(false).into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn undefined_is_an_error_naming_variable_and_line() {
        let t = Templates::new(Path::new("."));
        let e = t.render_str("x.j2", "a\n{{ app.prot }}", &context! { app => context!{ port => 1 } }).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("app.prot"), "{}", e.message);
    }

    #[test]
    fn error_does_not_print_values() {
        let t = Templates::new(Path::new("."));
        let e = t.render_str("x.j2", "{{ pw }} {{ nope }}", &context! { pw => "hunter2-secret" }).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn keeps_trailing_newline_and_does_not_escape() {
        let t = Templates::new(Path::new("."));
        let out = t.render_str("x", "<{{ a }}>\n", &context! { a => "&" }).unwrap();
        assert_eq!(out, "<&>\n");
    }

    #[test]
    fn when_and_references() {
        let t = Templates::new(Path::new("."));
        assert!(t.eval_bool("w", "x > 1", &context! { x => 2 }).unwrap());
        assert!(!t.eval_bool("w", "x is defined and x", &context! {}).unwrap());
        let r = t.referenced_in_str("s", "{{ a.b }} {% for i in items %}{{ i }}{% endfor %}").unwrap();
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec!["a", "items"]);
    }
}
