//! The command line: clap definitions, and one dispatch line per command (the commands are
//! in `commands/`, one file each).

use crate::commands::context::Context;
use crate::commands::{self as cmd, up::UpOptions};
use crate::error::{Error, exit};
use crate::inventory::Access;
use crate::report::{Output, OutputFormat, ReportOptions};
use crate::secrets::Redactor;
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
    /// Leave out steps with one of these tags (comma separated; wins over --tags)
    #[arg(long, global = true, value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Hosts worked on at once
    #[arg(long, global = true, default_value_t = 32)]
    pub forks: usize,
    /// Rolling deploy: hosts per batch (2), a percentage (50%) or a list (1,50%), over the env's `serial`
    #[arg(long, global = true, value_name = "N|P%", value_parser = parse_serial)]
    pub serial: Option<crate::config::Serial>,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Override a var for this run (repeatable): -e ref=v1.2, or -e @vars.toml (a file of key = value)
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
    /// Ask for the sudo password on the terminal (for `become`; in CI use ssh.become_password_env)
    #[arg(short = 'K', long = "ask-become-pass", global = true)]
    pub ask_become_pass: bool,
    /// The key read from stdin, filled in by `main`.
    #[arg(skip)]
    pub stdin_key: Hidden,
    /// The sudo password typed at `-K`'s prompt, filled in by `main`.
    #[arg(skip)]
    pub become_password: Hidden,
}

/// `up`/`plan`: what is made of the run's events at its end.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Write an HTML report of the run here (timeline per host, slowest steps, diffs, failures)
    #[arg(long = "report", value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print the 10 slowest steps at the end
    #[arg(long)]
    pub timings: bool,
}

impl From<ReportArgs> for cmd::report::RunReport {
    fn from(a: ReportArgs) -> Self {
        cmd::report::RunReport {
            html: a.html,
            timings: a.timings,
        }
    }
}

/// When to color output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// A private key read from stdin, a typed password; `Debug` never shows it.
#[derive(Clone, Default)]
pub struct Hidden(pub Option<Arc<str>>);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Hidden(given)"
        } else {
            "Hidden(none)"
        })
    }
}

impl Global {
    /// What the commands get: the options without clap, the terminal's answers, and the
    /// process's redactor.
    fn context(&self, redactor: Redactor) -> Context {
        Context {
            config: self.config.clone(),
            playbook: self.playbook.clone(),
            limit: self.limit.clone(),
            tags: self.tags.clone(),
            skip_tags: self.skip_tags.clone(),
            forks: self.forks,
            serial: self.serial.clone(),
            output: self.output,
            vars: self.vars.clone(),
            report: ReportOptions {
                verbosity: self.verbose,
                quiet: self.quiet,
                color: console::colors_enabled(),
            },
            yes: self.yes,
            access: Access {
                allow_prompt: crate::report::interactive() && !self.ssh_key_stdin,
                stdin_key: self.stdin_key.0.clone(),
                become_password: self.become_password.0.clone(),
            },
            redactor,
        }
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
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Check mode: probe the hosts and show what `up` would change (with diffs); changes nothing
    #[command(after_help = "Example: provision plan prod --detailed-exitcode")]
    Plan {
        env: String,
        /// Exit 2 when changes are pending, 0 when none
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Deploy an earlier release again: `up` with the var `ref` set to it
    #[command(after_help = "Example: provision rollback prod --to 3f2a9c1")]
    Rollback {
        env: String,
        /// Release to go back to (a prefix of a recorded release); default: the one before the current
        #[arg(long)]
        to: Option<String>,
    },
    /// An HTML report (timeline per host, slowest steps, diffs, failures) of a run saved with
    /// `--output json`; one self-contained file, secrets masked as they were on the terminal
    #[command(
        after_help = "Example:\n  provision up prod --output json > run.ndjson\n  provision report run.ndjson > run.html"
    )]
    Report {
        /// The run's events (`--output json` lines)
        events: PathBuf,
        /// Write the page here instead of stdout
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The release history recorded on the hosts
    #[command(after_help = "Example: provision releases prod")]
    Releases { env: String },
    /// List the environment's hosts, their roles and how they are reached
    #[command(after_help = "Example: provision hosts prod")]
    Hosts { env: String },
    /// Check everything `up` checks before connecting (provision.toml, every playbook, the
    /// templates rendered with the env's hosts and vars, secrets, host strings, keys) and
    /// report every error at once; contacts nothing
    #[command(
        after_help = "Examples:\n  provision validate\n  provision validate prod -e ref=v1.2\n\nWithout ENV every environment is checked. Exit 0 when valid, 1 when an error was found."
    )]
    Validate { env: Option<String> },
    /// The resolved configuration of an environment: hosts, their SSH settings, vars after
    /// -e, and the names of the secrets needed (values never shown); contacts nothing
    #[command(after_help = "Example: provision config prod -e ref=v1.2 --json")]
    Config {
        env: String,
        /// One JSON document instead of text (as --output json)
        #[arg(long)]
        json: bool,
    },
    /// The secrets an environment's source holds, which steps and templates use each
    /// (file:line), and which are missing; values never shown
    #[command(
        after_help = "Example: provision secrets prod\n\nExit 1 when a secret the playbook uses is missing."
    )]
    Secrets {
        env: String,
        /// One JSON document instead of text (as --output json)
        #[arg(long)]
        json: bool,
    },
    /// Terminate the environment's EC2 instances and delete the security group and key pair provision created
    #[command(after_help = "Example: provision down staging --yes")]
    Down { env: String },
    /// Run one command on the environment's hosts, output prefixed by host
    #[command(
        after_help = "Examples:\n  provision exec prod --limit web -- uptime\n  provision exec prod --container -- ./manage.py showmigrations\n  provision exec prod --limit web-1 -t --container -- sh\n\nEvery host runs even when one fails; exit 3 when a command failed somewhere, 4 when a host was unreachable."
    )]
    Exec {
        env: String,
        /// Seconds the command may run
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Run it inside this container on each host (`docker exec`); without NAME, the app's
        #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
        container: Option<String>,
        /// On a terminal, for interactive programs (`-t --container -- sh`): one host, through the system ssh client like `provision ssh`
        #[arg(short = 't', long)]
        tty: bool,
        /// The command (run by /bin/sh on the host)
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Open a shell on one host (or run a command there) with the system ssh client, through
    /// the same settings as `up`: user, port, key, checked host keys, jump host
    #[command(
        after_help = "Examples:\n  provision ssh prod web-1\n  provision ssh prod web-1 -- df -h\n  provision ssh prod web-1 -t -- docker exec -it app sh\n\nHOST may be omitted when the environment has one host."
    )]
    Ssh {
        env: String,
        /// The host (its name, address, or a role with one host)
        host: Option<String>,
        /// Force a terminal for the command (ssh -t), e.g. `-t -- docker exec -it app sh`
        #[arg(short = 't', long)]
        tty: bool,
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

/// Parse arguments and run: the process exit code. The error that stopped the command is
/// printed here, as one `error: ` line through the channel, masking every secret value
/// loaded before it (a template error may quote one), and its code is returned.
pub fn main() -> i32 {
    let redactor = Redactor::default();
    match parse_and_run(redactor.clone()) {
        Ok(code) => code,
        Err(e) => {
            Output::text(redactor).err_line(&format!("error: {e}"));
            e.exit_code()
        }
    }
}

fn parse_and_run(redactor: Redactor) -> Result<i32, Error> {
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap's own usage errors exit 2, which we keep for "changes pending".
            return Ok(if e.use_stderr() {
                exit::CONFIG
            } else {
                exit::OK
            });
        }
    };
    set_color(cli.global.color);
    if cli.global.ssh_key_stdin {
        let key = read_stdin_key().map_err(|m| Error::Usage(format!("--ssh-key-stdin: {m}")))?;
        cli.global.stdin_key = Hidden(Some(key));
    }
    if cli.global.ask_become_pass {
        let typed = read_become_password().map_err(|m| Error::Usage(format!("-K: {m}")))?;
        // Registered before anything prints: a command echoing it shows `***`.
        redactor.add(&typed);
        cli.global.become_password = Hidden(Some(typed));
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?
        .block_on(dispatch(cli.command, cli.global.context(redactor)))
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

/// The sudo password, typed on the terminal without echo; refused without one (CI).
fn read_become_password() -> Result<Arc<str>, String> {
    let term = console::Term::stderr();
    if !crate::report::interactive() || !term.is_term() {
        return Err("no terminal to ask on; set ssh.become_password_env to a variable holding the sudo password instead".into());
    }
    term.write_str("sudo password: ")
        .and_then(|()| term.read_secure_line())
        .map(Arc::from)
        .map_err(|e| format!("cannot read the password: {e}"))
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

/// One line per command.
async fn dispatch(command: Command, cx: Context) -> Result<i32, Error> {
    let cx = &cx;
    match command {
        Command::Up {
            env,
            allow_recreate,
            retry_failed,
            report,
        } => {
            cmd::up::run(
                cx,
                &env,
                UpOptions {
                    allow_recreate,
                    retry_failed,
                    report: report.into(),
                },
            )
            .await
        }
        Command::Plan {
            env,
            detailed_exitcode,
            report,
        } => cmd::plan::run(cx, &env, detailed_exitcode, report.into()).await,
        Command::Report { events, out } => cmd::report::run(cx, &events, out.as_deref()),
        Command::Rollback { env, to } => cmd::rollback::run(cx, &env, to.as_deref()).await,
        Command::Releases { env } => cmd::releases::run(cx, &env).await,
        Command::Hosts { env } => cmd::hosts::run(cx, &env).await,
        Command::Down { env } => cmd::down::run(cx, &env).await,
        Command::Validate { env } => cmd::validate::run(cx, env.as_deref()),
        Command::Config { env, json } => cmd::config::run(cx, &env, json),
        Command::Secrets { env, json } => cmd::secrets::run(cx, &env, json),
        Command::Exec {
            env,
            timeout,
            container,
            tty,
            command,
        } => {
            let how = cmd::exec::How {
                timeout,
                container,
                tty,
            };
            cmd::exec::run(cx, &env, &command.join(" "), how).await
        }
        Command::Ssh {
            env,
            host,
            tty,
            command,
        } => cmd::ssh::run(cx, &env, host.as_deref(), &command, tty).await,
        Command::Logs {
            env,
            follow,
            container,
            tail,
            since,
            timestamps,
        } => {
            let o = cmd::logs::LogsOptions {
                follow,
                container,
                tail,
                since,
                timestamps,
            };
            cmd::logs::run(cx, &env, o).await
        }
        Command::Status { env, container } => {
            cmd::status::run(cx, &env, container.as_deref()).await
        }
        Command::Unlock { env } => cmd::unlock::run(cx, &env).await,
        Command::Init { dir } => Ok(cmd::init::init(&dir).map(|()| exit::OK)?),
        Command::Completions { shell } => cmd::completions::run(shell, Cli::command(), &cx.out()),
        Command::Man { dir } => cmd::man::run(Cli::command(), dir.as_deref(), &cx.out()),
    }
}

/// `--serial 2`, `50%` or `1,50%`.
fn parse_serial(s: &str) -> Result<crate::config::Serial, String> {
    s.parse()
}

use crate::commands::VAR_FILE;

fn parse_var(s: &str) -> Result<(String, String), String> {
    // `-e @vars.toml`: read (and checked, with file:line:col) when the project loads.
    if let Some(path) = s.strip_prefix('@') {
        if path.is_empty() {
            return Err("`-e @` needs a file: -e @vars.toml".into());
        }
        return Ok((VAR_FILE.into(), path.into()));
    }
    match s.split_once('=') {
        Some((k, v)) if crate::config::playbook::is_identifier(k) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("`{s}` is not KEY=VALUE with KEY a variable name")),
    }
}
