//! The command line (clap derive) and what each command does.

use crate::config::{ConfigError, Playbook, Project};
use crate::plan::{PlanOptions, Planner};
use crate::report::{Mode, OutputFormat, Sink};
use crate::runner::{self, RunOptions, exit};
use crate::secrets::{Redactor, Secrets};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "provision", version, about = "Provision and deploy applications over SSH", long_about = None)]
#[command(
    after_help = "Exit codes: 0 done, 1 config or usage error (no host touched), 2 changes pending (plan --detailed-exitcode), 3 a step failed, 4 a host was unreachable."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// provision.toml, or the folder holding it (default: search upward from here)
    #[arg(short = 'C', long = "config", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Playbook name (playbooks/<name>.toml) or path
    #[arg(long, global = true)]
    pub playbook: Option<String>,
    /// Only these hosts or roles (comma separated)
    #[arg(long, global = true)]
    pub limit: Option<String>,
    /// Only steps with one of these tags (comma separated)
    #[arg(long, global = true, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Hosts worked on at once
    #[arg(long, global = true, default_value_t = 32)]
    pub forks: usize,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Override a var for this run (repeatable): -e ref=v1.2
    #[arg(short = 'e', long = "var", global = true, value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// More output: -v shows every step and command output, -vv what goes over the wire
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Answer yes to confirmations (terminating EC2 instances, `down`); required without a terminal
    #[arg(long, global = true)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Converge the environment's hosts: apply every step that is not already in its desired state
    #[command(after_help = "Example: provision up prod --limit web")]
    Up {
        env: String,
        /// Allow recreating `stateful = true` containers (their volumes are kept)
        #[arg(long)]
        allow_recreate: bool,
    },
    /// Check mode: probe the hosts and show what `up` would change (with diffs); changes nothing
    #[command(after_help = "Example: provision plan prod --detailed-exitcode")]
    Plan {
        env: String,
        /// Exit 2 when changes are pending, 0 when none
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Deploy an earlier release again: `up` with the var `ref` set to it
    #[command(after_help = "Example: provision rollback prod --to 3f2a9c1")]
    Rollback {
        env: String,
        /// Release to go back to (a prefix of a recorded release); default: the one before the current
        #[arg(long)]
        to: Option<String>,
    },
    /// The release history recorded on the hosts
    #[command(after_help = "Example: provision releases prod")]
    Releases { env: String },
    /// List the environment's hosts, their roles and how they are reached
    #[command(after_help = "Example: provision hosts prod")]
    Hosts { env: String },
    /// Terminate the environment's EC2 instances and delete the security group and key pair provision created
    #[command(after_help = "Example: provision down staging --yes")]
    Down { env: String },
    /// Run one command on the environment's hosts, output prefixed by host
    #[command(after_help = "Example: provision exec prod --limit web -- uptime")]
    Exec {
        env: String,
        /// Seconds the command may run
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// The command (run by /bin/sh on the host)
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Scaffold provision.toml, playbooks/deploy.toml, templates/ and secrets/.gitignore
    #[command(after_help = "Example: provision init myapp")]
    Init {
        /// Folder to create the files in
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// Parse arguments and run; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap's own usage errors exit 2, which we keep for "changes pending".
            return if e.use_stderr() {
                exit::CONFIG
            } else {
                exit::OK
            };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::CONFIG;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            exit::CONFIG
        }
    }
}

async fn dispatch(cli: Cli) -> Result<i32, ConfigError> {
    let g = &cli.global;
    match &cli.command {
        Command::Init { dir } => crate::scaffold::init(dir).map(|()| exit::OK),
        Command::Hosts { env } => hosts(g, env).await,
        Command::Down { env } => down(g, env).await,
        Command::Up {
            env,
            allow_recreate,
        } => converge(g, env, Mode::Apply, false, *allow_recreate).await,
        Command::Plan {
            env,
            detailed_exitcode,
        } => converge(g, env, Mode::Check, *detailed_exitcode, false).await,
        Command::Rollback { env, to } => rollback(g, env, to.as_deref()).await,
        Command::Releases { env } => releases(g, env).await,
        Command::Exec {
            env,
            timeout,
            command,
        } => exec(g, env, &command.join(" "), *timeout).await,
    }
}

async fn hosts(g: &Global, env_name: &str) -> Result<i32, ConfigError> {
    let project = Project::load(&Project::locate(g.config.as_deref())?)?;
    let env = project.env(env_name)?;
    let resolve = |e: &_| crate::inventory::resolve(&project, e, None, false);
    if let Some(r) = crate::cloud::print_hosts(&project, env, cloud_options(g), resolve).await {
        return r;
    }
    let hosts = crate::inventory::resolve(&project, env, g.limit.as_deref(), false)?;
    if g.output == OutputFormat::Json {
        for h in &hosts {
            let c = &h.connect;
            println!(
                "{}",
                serde_json::json!({ "host": h.name, "roles": h.roles, "address": c.address, "port": c.port, "user": c.user,
                    "jump": c.jump.as_ref().map(|j| format!("{}@{}:{}", j.user, j.address, j.port)) })
            );
        }
        return Ok(exit::OK);
    }
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(4).max(4);
    println!("{:width$}  {:<16} CONNECT", "HOST", "ROLES");
    for h in &hosts {
        let c = &h.connect;
        let via = c
            .jump
            .as_ref()
            .map(|j| format!(" via {}@{}:{}", j.user, j.address, j.port))
            .unwrap_or_default();
        println!(
            "{:width$}  {:<16} {}@{}:{}{via}",
            h.name,
            h.roles.join(","),
            c.user,
            c.address,
            c.port
        );
    }
    Ok(exit::OK)
}

async fn exec(g: &Global, env_name: &str, command: &str, timeout: u64) -> Result<i32, ConfigError> {
    let project = Project::load(&Project::locate(g.config.as_deref())?)?;
    let env = project.env(env_name)?;
    let redactor = Redactor::default();
    // Loaded only so that secret values in the command's output are masked.
    Secrets::load(env.secrets.as_deref(), redactor.clone())?;
    let hosts = crate::inventory::resolve(&project, env, g.limit.as_deref(), interactive())?;
    let timeout = std::time::Duration::from_secs(timeout);
    Ok(crate::adhoc::run(hosts, command, g.forks, timeout, g.output, redactor).await)
}

async fn rollback(g: &Global, env_name: &str, to: Option<&str>) -> Result<i32, ConfigError> {
    let project = Project::load(&Project::locate(g.config.as_deref())?)?;
    let env = project.env(env_name)?;
    let hosts = crate::inventory::resolve(&project, env, g.limit.as_deref(), interactive())?;
    let first = hosts
        .first()
        .ok_or_else(|| ConfigError::new(&project.file, "no host selected"))?;
    let records = match crate::releases::read(first, &project.app, env_name).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read the release log: {e}");
            return Ok(exit::UNREACHABLE);
        }
    };
    let target = crate::releases::rollback_target(&records, to)
        .map_err(|m| ConfigError::new(&project.file, m))?;
    eprintln!("rolling back {env_name} to {target}");
    let mut g2 = g.clone();
    g2.vars.push(("ref".into(), target));
    converge(&g2, env_name, Mode::Apply, false, false).await
}

async fn releases(g: &Global, env_name: &str) -> Result<i32, ConfigError> {
    let project = Project::load(&Project::locate(g.config.as_deref())?)?;
    let env = project.env(env_name)?;
    let hosts = crate::inventory::resolve(&project, env, g.limit.as_deref(), interactive())?;
    let mut code = exit::OK;
    for h in &hosts {
        match crate::releases::read(h, &project.app, env_name).await {
            Err(e) => {
                println!("[{}] UNREACHABLE: {e}", h.name);
                code = exit::UNREACHABLE;
            }
            Ok(records) if g.output == OutputFormat::Json => {
                for r in records {
                    println!(
                        "{}",
                        serde_json::json!({ "host": h.name, "time": r.time, "release": r.release, "user": r.user, "result": r.result, "changed": r.changed })
                    );
                }
            }
            Ok(records) => {
                println!("[{}] {} release(s)", h.name, records.len());
                for r in records {
                    println!(
                        "  {}  {:<8} {:<42} {} ({} changed)",
                        r.time, r.result, r.release, r.user, r.changed
                    );
                }
            }
        }
    }
    Ok(code)
}

/// Prompts (key passphrases) only when a person is there to answer.
fn interactive() -> bool {
    console::Term::stdout().is_term() && std::env::var_os("CI").is_none()
}

/// Load everything and plan every host before the first connection: any config, template
/// or secret error stops the run here, with no host touched.
async fn converge(
    g: &Global,
    env_name: &str,
    mode: Mode,
    detailed: bool,
    allow_recreate: bool,
) -> Result<i32, ConfigError> {
    let file = Project::locate(g.config.as_deref())?;
    let project = Project::load(&file)?;
    let env = project.env(env_name)?;
    let pb_path = project.playbook_path(env, g.playbook.as_deref());
    let display = pb_path
        .strip_prefix(&project.root)
        .unwrap_or(&pb_path)
        .display()
        .to_string();
    let playbook = Playbook::load(&pb_path, &display)?;
    playbook.check_roles(&env.roles, env_name)?;
    let redactor = Redactor::default();
    let secrets = Secrets::load(env.secrets.as_deref(), redactor.clone())?;
    let tags: Vec<String> = g
        .tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let opts = PlanOptions {
        tags,
        vars: g.vars.clone(),
        allow_recreate,
    };
    let planner = Planner::new(&project, env_name, playbook, secrets, opts)?;
    // EC2 machines are found or created (up) or planned (plan) here, after every local check.
    let resolve = |e: &_| crate::inventory::resolve(&project, e, None, interactive());
    let cloud = crate::cloud::hosts_for_run(
        &project,
        env,
        g.limit.as_deref(),
        mode,
        cloud_options(g),
        resolve,
    )
    .await;
    let (hosts, ec2_pending) = match cloud {
        Ok(r) => (r.hosts, r.ec2_pending),
        Err(stop) => return stop.into_result(),
    };
    let plans = hosts
        .iter()
        .map(|h| planner.plan_host(h))
        .collect::<Result<Vec<_>, _>>()?;
    let sink = Sink::new(g.output, g.verbose, redactor, console::colors_enabled());
    let summary = runner::run(
        Arc::new(planner),
        plans,
        RunOptions {
            mode,
            forks: g.forks,
        },
        sink,
        detailed,
    )
    .await;
    if ec2_pending && detailed && summary.exit_code == exit::OK {
        return Ok(exit::PENDING);
    }
    Ok(summary.exit_code)
}

async fn down(g: &Global, env_name: &str) -> Result<i32, ConfigError> {
    let project = Project::load(&Project::locate(g.config.as_deref())?)?;
    let env = project.env(env_name)?;
    crate::cloud::down(&project, env, cloud_options(g)).await
}

fn cloud_options(g: &Global) -> crate::cloud::Options {
    crate::cloud::Options {
        yes: g.yes,
        interactive: interactive(),
        json: g.output == OutputFormat::Json,
    }
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if crate::config::playbook::is_identifier(k) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("`{s}` is not KEY=VALUE with KEY a variable name")),
    }
}
