//! The template layer: rendering any string with a fixed context, and finding the variables
//! it references, gives a value or a TemplateError, never a panic; an error never shows a
//! context value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minijinja::{Value, context};
use provision::template::{Templates, line_of_variable};
use std::path::Path;
use std::sync::OnceLock;

const SECRET: &str = "fuzz-secret-value-7f3a";

fn templates() -> &'static (Templates, Value) {
    static T: OnceLock<(Templates, Value)> = OnceLock::new();
    T.get_or_init(|| {
        let ctx = context! {
            app => "demo",
            env => "prod",
            repo => "https://git.example.com/demo.git",
            port => 8000,
            workers => vec![1, 2, 3],
            host => context! { name => "web1", address => "10.0.0.1", port => 22, user => "deploy", roles => vec!["web"] },
            secrets => context! { DB_PASSWORD => SECRET },
            src => context! { sha => "0123456789abcdef", short_sha => "0123456", changed => true },
        };
        (Templates::new(Path::new("/nonexistent-fuzz-root")), ctx)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let (t, ctx) = templates();
    if let Err(e) = t.render_str("fuzz.j2", source, ctx) {
        // The source itself may contain the secret text; only check errors from clean input.
        if !source.contains(SECRET) {
            assert!(!e.to_string().contains(SECRET), "error shows a secret: {e}");
        }
    }
    let _ = t.referenced_in_str("fuzz.j2", source);
    if source.len() < 200 {
        let _ = t.eval_bool("when", source, ctx);
        let _ = t.referenced_in_expr("when", source);
    }
    let _ = line_of_variable(source, "port");
});
