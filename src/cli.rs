//! The command line (clap derive) and what each command does.

use crate::cloud::Stop;
use crate::commands::Target;
use crate::config::{ConfigError, Playbook, Project};
use crate::inventory::Access;
use crate::plan::{PlanOptions, Planner};
use crate::report::{Mode, OutputFormat, ReportOptions, Sink};
use crate::runner::{self, RunOptions, exit};
use crate::secrets::{Redactor, Secrets};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

/// `0.1.0 (3f2a9c1)`: the package version and the git commit it was built from (build.rs).
pub const VERSION: &str = env!("PROVISION_VERSION");

#[derive(Debug, Parser)]
#[command(name = "provision", version = VERSION, about = "Provision and deploy applications over SSH", long_about = None)]
#[command(
    after_help = "Exit codes: 0 done, 1 config or usage error (no host touched), 2 changes pending (plan --detailed-exitcode), 3 a step failed, 4 a host was unreachable.\n\nIn CI (CI set, or no terminal on stdin) provision never prompts: the SSH key comes from $PROVISION_SSH_KEY or --ssh-key-stdin, host keys from $PROVISION_KNOWN_HOSTS or ssh.host_key, confirmations from --yes."
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
    /// Only errors and the final summary line
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Colors: auto (a terminal, and NO_COLOR unset), always, never
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Read the SSH private key from stdin (e.g. `printenv DEPLOY_KEY | provision up prod --ssh-key-stdin`)
    #[arg(long, global = true)]
    pub ssh_key_stdin: bool,
    /// The key read from stdin, filled in by `main`.
    #[arg(skip)]
    pub stdin_key: StdinKey,
}

/// When to color output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// A private key read from stdin; `Debug` never shows it.
#[derive(Clone, Default)]
pub struct StdinKey(pub Option<Arc<str>>);

impl std::fmt::Debug for StdinKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StdinKey(given)"
        } else {
            "StdinKey(none)"
        })
    }
}

impl Global {
    /// Connection inputs from the command line and the terminal.
    fn access(&self) -> Access {
        Access {
            allow_prompt: interactive() && !self.ssh_key_stdin,
            stdin_key: self.stdin_key.0.clone(),
        }
    }

    fn report(&self) -> ReportOptions {
        ReportOptions {
            verbosity: self.verbose,
            quiet: self.quiet,
            color: console::colors_enabled(),
        }
    }

    fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
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
        /// Only the hosts the last `up` of this env did not finish (failed, unreachable or
        /// interrupted), as recorded in .provision/last-failed-<env>
        #[arg(long)]
        retry_failed: bool,
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
    #[command(
        after_help = "Example: provision exec prod --limit web -- uptime\n\nEvery host runs even when one fails; exit 3 when a command failed somewhere, 4 when a host was unreachable."
    )]
    Exec {
        env: String,
        /// Seconds the command may run
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// The command (run by /bin/sh on the host)
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Open a shell on one host (or run a command there) with the system ssh client, through
    /// the same settings as `up`: user, port, key, checked host keys, jump host
    #[command(
        after_help = "Examples:\n  provision ssh prod web-1\n  provision ssh prod web-1 -- df -h\n\nHOST may be omitted when the environment has one host."
    )]
    Ssh {
        env: String,
        /// The host (its name, address, or a role with one host)
        host: Option<String>,
        /// A command to run instead of a login shell
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// The app container's logs on every host (`docker logs`), prefixed by host
    #[command(
        after_help = "Examples:\n  provision logs prod --tail 100\n  provision logs prod --follow --limit web-1\n\n--follow runs until Ctrl-C (or SIGTERM), which also stops `docker logs` on the hosts."
    )]
    Logs {
        env: String,
        /// Keep streaming new lines
        #[arg(short, long)]
        follow: bool,
        /// Container name (default: the app name)
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
        /// Only this many lines from the end
        #[arg(long, value_name = "N")]
        tail: Option<String>,
        /// Only lines since this time or duration ago (10m, 2026-01-02T15:04:05Z)
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Show each line's timestamp
        #[arg(short, long)]
        timestamps: bool,
    },
    /// Per host: the release deployed, the app container's state and health, the deploy
    /// lock's holder, the last deploy
    #[command(
        after_help = "Example: provision status prod\n\nExit 0 when every host answered, 4 when one did not."
    )]
    Status {
        env: String,
        /// Container name (default: the app name)
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
    },
    /// Remove the deploy lock an interrupted deploy left behind (asks first; --yes where no one can answer)
    #[command(after_help = "Example: provision unlock prod --yes")]
    Unlock { env: String },
    /// Scaffold provision.toml, playbooks/deploy.toml, templates/ and secrets/.gitignore
    #[command(after_help = "Example: provision init myapp")]
    Init {
        /// Folder to create the files in
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  provision completions bash > ~/.local/share/bash-completion/completions/provision\n  provision completions zsh > \"${fpath[1]}/_provision\"\n  provision completions fish > ~/.config/fish/completions/provision.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a folder
    #[command(
        after_help = "Examples:\n  provision man | man -l -\n  provision man --dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write provision.1 and provision-<command>.1 here instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
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
    set_color(cli.global.color);
    let mut cli = cli;
    if cli.global.ssh_key_stdin {
        match read_stdin_key() {
            Ok(k) => cli.global.stdin_key = StdinKey(Some(k)),
            Err(m) => {
                eprintln!("error: --ssh-key-stdin: {m}");
                return exit::CONFIG;
            }
        }
    }
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

/// `--color` and NO_COLOR decide once, for stdout and stderr alike.
fn set_color(choice: ColorChoice) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map_or(true, |t| t != "dumb")
                && console::Term::stdout().is_term()
        }
    };
    console::set_colors_enabled(on);
    console::set_colors_enabled_stderr(on);
}

/// The whole of stdin, refused from a terminal (that would be a prompt).
fn read_stdin_key() -> Result<Arc<str>, String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err("stdin is a terminal; pipe the key in (e.g. `printenv DEPLOY_KEY | provision ... --ssh-key-stdin`)".into());
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    if text.trim().is_empty() {
        return Err("stdin is empty".into());
    }
    Ok(text.into())
}

async fn dispatch(cli: Cli) -> Result<i32, ConfigError> {
    command(&cli.global, &cli.command)
        .await
        .or_else(Stop::into_result)
}

/// One command. `Stop`: a config error, or an exit code decided on the way (an EC2 API
/// failure while finding an env's instances).
async fn command(g: &Global, command: &Command) -> Result<i32, Stop> {
    let target = |env: &str| {
        let env = env.to_string();
        async move { Target::load(g.config.as_deref(), &env, g.limit.as_deref(), &g.access()).await }
    };
    match command {
        Command::Init { dir } => Ok(crate::commands::init::init(dir).map(|()| exit::OK)?),
        Command::Completions { shell } => {
            use std::io::Write;
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "provision", &mut script);
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(&script);
            Ok(exit::OK)
        }
        Command::Man { dir } => Ok(man(dir.as_deref())?),
        Command::Ssh { env, host, command } => {
            let t = target(env).await?;
            let h = crate::commands::ssh::pick(&t.hosts, host.as_deref(), &t.project.file)?;
            Ok(crate::commands::ssh::run(h, command).await)
        }
        Command::Logs {
            env,
            follow,
            container,
            tail,
            since,
            timestamps,
        } => {
            let t = target(env).await?;
            let o = crate::commands::logs::LogsOptions {
                follow: *follow,
                container: container.clone(),
                tail: tail.clone(),
                since: since.clone(),
                timestamps: *timestamps,
            };
            Ok(crate::commands::logs::run(t, o, g.quiet).await)
        }
        Command::Status { env, container } => {
            let t = target(env).await?;
            Ok(
                crate::commands::status::run(t, container.as_deref(), g.forks, g.json(), g.quiet)
                    .await,
            )
        }
        Command::Unlock { env } => {
            if !g.yes && !interactive() {
                return Err(Stop::Config(ConfigError::new(
                    Project::locate(g.config.as_deref())?,
                    "removing a deploy lock needs confirmation, and no one can answer here (no terminal on stdin, or CI is set)",
                )
                .with_help("pass --yes")));
            }
            let t = target(env).await?;
            let ask = |q: &str| confirm(q);
            let confirm: Option<&dyn Fn(&str) -> bool> = if g.yes { None } else { Some(&ask) };
            Ok(crate::commands::unlock::run(t, confirm, g.json()).await)
        }
        Command::Rollback { env, to } => rollback(g, target(env).await?, to.as_deref()).await,
        Command::Releases { env } => Ok(releases(g, target(env).await?).await),
        Command::Exec {
            env,
            timeout,
            command,
        } => Ok(exec(g, target(env).await?, &command.join(" "), *timeout).await),
        Command::Hosts { env } => Ok(hosts(g, env).await?),
        Command::Down { env } => Ok(down(g, env).await?),
        Command::Up {
            env,
            allow_recreate,
            retry_failed,
        } => {
            let g = &retry_limit(g, env, *retry_failed)?;
            Ok(converge(g, env, Mode::Apply, false, *allow_recreate).await?)
        }
        Command::Plan {
            env,
            detailed_exitcode,
        } => Ok(converge(g, env, Mode::Check, *detailed_exitcode, false).await?),
    }
}

async fn hosts(g: &Global, env_name: &str) -> Result<i32, ConfigError> {
    let project = Project::load(&Project::locate(g.config.as_deref())?)?;
    let env = project.env(env_name)?;
    let access = g.access();
    let resolve = |e: &_| crate::inventory::resolve_with(&project, e, None, &access);
    if let Some(r) = crate::cloud::print_hosts(&project, env, cloud_options(g), resolve).await {
        return r;
    }
    let hosts = crate::inventory::resolve_with(&project, env, g.limit.as_deref(), &g.access())?;
    if g.output == OutputFormat::Json {
        for h in &hosts {
            let c = &h.connect;
            println!(
                "{}",
                serde_json::json!({ "event": "host", "host": h.name, "roles": h.roles, "address": c.address, "port": c.port, "user": c.user,
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

async fn exec(g: &Global, t: Target, command: &str, timeout: u64) -> i32 {
    let o = crate::commands::exec::ExecOptions {
        forks: g.forks,
        timeout: std::time::Duration::from_secs(timeout),
        output: g.output,
        quiet: g.quiet,
        prelude: t.prelude.clone(),
    };
    crate::commands::exec::run(t.hosts, command, o, t.redactor).await
}

/// Print the man page, or write one page per command into `dir`.
fn man(dir: Option<&std::path::Path>) -> Result<i32, ConfigError> {
    let cmd = Cli::command();
    let render = |c: clap::Command| -> Result<Vec<u8>, ConfigError> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .render(&mut buf)
            .map_err(|e| ConfigError::new("man page", e.to_string()))?;
        Ok(buf)
    };
    let Some(dir) = dir else {
        use std::io::Write;
        let page = render(cmd)?;
        let _ = std::io::stdout().write_all(&page);
        return Ok(exit::OK);
    };
    std::fs::create_dir_all(dir).map_err(|e| ConfigError::new(dir, e.to_string()))?;
    let mut pages = vec![("provision.1".to_string(), render(cmd.clone())?)];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("provision-{}", sub.get_name());
        // The page's title is the command's name: leaked, the process is about to end anyway.
        let title: &'static str = Box::leak(name.clone().into_boxed_str());
        let page = render(sub.clone().name(title))?;
        pages.push((format!("{name}.1"), page));
    }
    for (file, page) in pages {
        let path = dir.join(&file);
        std::fs::write(&path, page).map_err(|e| ConfigError::new(&path, e.to_string()))?;
        crate::commands::out_line(&path.display().to_string());
    }
    Ok(exit::OK)
}

/// Ask a yes/no question on the terminal (only called when one is there).
fn confirm(question: &str) -> bool {
    eprint!("{question}");
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// `rollback`: read the release log on the first host (static or running EC2 instance), then
/// `up` with `ref` set to the release picked.
async fn rollback(g: &Global, t: Target, to: Option<&str>) -> Result<i32, Stop> {
    let (project, env_name) = (&t.project, t.env.name.as_str());
    let first = t
        .hosts
        .first()
        .ok_or_else(|| ConfigError::new(&project.file, "no host selected"))?;
    let records =
        match crate::remote::releases::read(&first.name, &first.connect, &project.app, env_name)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot read the release log: {e}");
                return Ok(exit::UNREACHABLE);
            }
        };
    let target = crate::remote::releases::rollback_target(&records, to)
        .map_err(|m| ConfigError::new(&project.file, m))?;
    if !g.quiet {
        eprintln!("rolling back {env_name} to {target}");
    }
    let mut g2 = g.clone();
    g2.vars.push(("ref".into(), target));
    Ok(converge(&g2, env_name, Mode::Apply, false, false).await?)
}

async fn releases(g: &Global, t: Target) -> i32 {
    let (app, env_name) = (&t.project.app, t.env.name.as_str());
    let mut code = exit::OK;
    for h in &t.hosts {
        match crate::remote::releases::read(&h.name, &h.connect, app, env_name).await {
            Err(e) if g.json() => {
                println!(
                    "{}",
                    serde_json::json!({ "event": "release", "host": h.name, "unreachable": true, "error": e })
                );
                code = exit::UNREACHABLE;
            }
            Err(e) => {
                println!("[{}] UNREACHABLE: {e}", h.name);
                code = exit::UNREACHABLE;
            }
            Ok(records) if g.output == OutputFormat::Json => {
                for r in records {
                    println!(
                        "{}",
                        serde_json::json!({ "event": "release", "host": h.name, "time": r.time, "release": r.release, "user": r.user, "result": r.result, "changed": r.changed })
                    );
                }
            }
            Ok(_) if g.quiet => {}
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
    code
}

/// Prompts (key passphrases, confirmations) only when a person is there to answer: stdin is
/// a terminal and `CI` is not set. (stdout may well be piped: `provision up prod | tee log`.)
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::env::var_os("CI").is_none()
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
    let access = g.access();
    let resolve = |e: &_| crate::inventory::resolve_with(&project, e, None, &access);
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
    let sink = Sink::with_options(g.output, g.report(), redactor);
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
    if mode == Mode::Apply {
        runner::record_unfinished(&project.root, env_name, &summary);
    }
    if ec2_pending && detailed && summary.exit_code == exit::OK {
        return Ok(exit::PENDING);
    }
    Ok(summary.exit_code)
}

/// `up --retry-failed`: the global options with `--limit` set to the hosts the last `up` of
/// `env` did not finish.
fn retry_limit(g: &Global, env: &str, retry: bool) -> Result<Global, ConfigError> {
    let mut g = g.clone();
    if retry {
        let project = Project::load(&Project::locate(g.config.as_deref())?)?;
        if g.limit.is_some() {
            return Err(ConfigError::new(
                &project.file,
                "--retry-failed and --limit cannot be used together",
            )
            .with_help("--retry-failed limits the run to the hosts the last `up` did not finish"));
        }
        let hosts = runner::read_unfinished(&project.root, env).map_err(|file| {
            ConfigError::new(file, format!("no unfinished hosts recorded for env `{env}`"))
                .with_help("the last `up` of this env finished on every host (or none ran here): run `provision up` without --retry-failed")
        })?;
        g.limit = Some(hosts.join(","));
    }
    Ok(g)
}

async fn down(g: &Global, env_name: &str) -> Result<i32, ConfigError> {
    let project = Project::load(&Project::locate(g.config.as_deref())?)?;
    let env = project.env(env_name)?;
    let access = g.access();
    let resolve = |e: &_| crate::inventory::resolve_with(&project, e, None, &access);
    crate::cloud::down(&project, env, cloud_options(g), resolve).await
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
