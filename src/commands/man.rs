//! `provision man`: the man page (roff) on stdout, or one page per command into a folder.

use crate::config::ConfigError;
use crate::error::{Error, exit};
use crate::report::Output;
use std::path::Path;

/// `cmd`: the whole command line definition (clap's, from `cli`).
pub fn run(cmd: clap::Command, dir: Option<&Path>, out: &Output) -> Result<i32, Error> {
    let Some(dir) = dir else {
        // roff is text clap_mangen wrote: UTF-8.
        out.write(&String::from_utf8_lossy(&render(cmd)?));
        return Ok(exit::OK);
    };
    std::fs::create_dir_all(dir).map_err(|e| ConfigError::new(dir, e.to_string()))?;
    for (file, page) in pages(cmd)? {
        let path = dir.join(&file);
        std::fs::write(&path, page).map_err(|e| ConfigError::new(&path, e.to_string()))?;
        out.line(&path.display().to_string());
    }
    Ok(exit::OK)
}

/// `provision.1` and a `provision-<command>.1` per command.
fn pages(cmd: clap::Command) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
    let mut pages = vec![("provision.1".to_string(), render(cmd.clone())?)];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("provision-{}", sub.get_name());
        // The page's title is the command's name: leaked, the process is about to end anyway.
        let title: &'static str = Box::leak(name.clone().into_boxed_str());
        let page = render(sub.clone().name(title))?;
        pages.push((format!("{name}.1"), page));
    }
    Ok(pages)
}

fn render(c: clap::Command) -> Result<Vec<u8>, ConfigError> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(c)
        .render(&mut buf)
        .map_err(|e| ConfigError::new("man page", e.to_string()))?;
    Ok(buf)
}
