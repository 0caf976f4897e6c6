//! The `gatehouse` binary: parse the configuration, run, exit with a clear
//! message (exit code 2) when starting fails.

use std::process::ExitCode;

use clap::Parser as _;
use gatehouse::config::{Cli, ClientCommand, Command, KeysCommand, LogFormat, UserCommand};

fn main() -> ExitCode {
    return_large_blocks_to_the_system();
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(err) if err.not_found() => {}
        Err(err) => return fail(format!("cannot read .env: {err}")),
    }
    let cli = Cli::parse();
    let logs = init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return fail(format!("cannot start the runtime: {err}")),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None => gatehouse::serve(cli.serve).await,
            Some(Command::Serve(config)) => gatehouse::serve(config).await,
            Some(Command::Migrate(database)) => gatehouse::migrate(&database).await,
            Some(Command::User(UserCommand::Create { email, user })) => {
                gatehouse::create_user(
                    &user.username,
                    email.as_deref(),
                    &user.database,
                    &user.passwords,
                )
                .await
            }
            Some(Command::User(UserCommand::MfaReset { username, database })) => {
                gatehouse::reset_user_mfa(&username, &database)
                    .await
                    .map(|had| {
                        if had {
                            eprintln!(
                                "gatehouse: the second factor of {username} is removed; \
                             the password alone signs in until they enrol again"
                            );
                        } else {
                            eprintln!(
                                "gatehouse: {username} had no second factor; nothing changed"
                            );
                        }
                    })
            }
            Some(Command::User(UserCommand::Disable(user))) => {
                gatehouse::set_user_disabled(&user.username, true, &user.database, &user.passwords)
                    .await
            }
            Some(Command::User(UserCommand::ResetLink {
                username,
                public_url,
                password_reset_url,
                password_reset_ttl,
                issuer,
                database,
            })) => {
                let args = gatehouse::ResetLinkArgs {
                    public_url,
                    password_reset_url,
                    ttl: password_reset_ttl,
                    issuer,
                };
                gatehouse::reset_link(&username, &database, &args)
                    .await
                    .map(|link| {
                        println!("{link}");
                        eprintln!(
                            "gatehouse: a password reset link for {username}: it works once, \
                             within {}; give it to its owner over a channel you trust",
                            humantime::format_duration(password_reset_ttl)
                        );
                    })
            }
            Some(Command::Client(command)) => run_client_command(command).await,
            Some(Command::User(UserCommand::Enable(user))) => {
                gatehouse::set_user_disabled(&user.username, false, &user.database, &user.passwords)
                    .await
            }
            Some(Command::Keys(KeysCommand::Rotate {
                activate_in,
                keys,
                database,
            })) => gatehouse::rotate_keys(&keys, &database, activate_in)
                .await
                .map(|rotation| {
                    println!("{}", rotation.kid);
                    eprintln!(
                        "gatehouse: new signing key {} (replacing {}), signing from {}",
                        rotation.kid,
                        rotation.previous.as_deref().unwrap_or("none"),
                        format_time(rotation.activates_at)
                    );
                }),
            Some(Command::Keys(KeysCommand::Reset { keys, database })) if !keys.in_database() => {
                gatehouse::reset_refresh_secret(&keys, &database)
                    .await
                    .map(|()| {
                        eprintln!(
                            "gatehouse: a new refresh-token secret under the configured \
                             key-encryption key; the fixed signing key is yours to replace"
                        );
                    })
            }
            Some(Command::Keys(KeysCommand::Reset { keys, database })) => {
                gatehouse::reset_keys(&keys, &database).await.map(|reset| {
                    println!("{}", reset.kid);
                    eprintln!(
                        "gatehouse: new signing key {}; {} earlier key(s) discarded: \
                             access tokens they signed no longer verify",
                        reset.kid, reset.discarded
                    );
                })
            }
            Some(Command::Keys(KeysCommand::Reseal {
                new_key_encryption_key_file,
                keys,
                database,
            })) => gatehouse::reseal_keys(&keys, &database, &new_key_encryption_key_file)
                .await
                .map(|(resealed, totp)| {
                    eprintln!(
                        "gatehouse: {resealed} signing key(s), the refresh-token secret and \
                         {totp} TOTP secret(s) resealed; restart every instance with \
                         --key-encryption-key-file {}",
                        new_key_encryption_key_file.display()
                    );
                }),
            Some(Command::Keys(KeysCommand::List { keys, database })) => {
                gatehouse::list_keys(&keys, &database).await.map(|records| {
                    println!("generation\tkid\tcreated\tsigning from");
                    for record in records {
                        println!(
                            "{}\t{}\t{}\t{}",
                            record.generation,
                            record.kid,
                            format_time(record.created_at),
                            format_time(record.activates_at)
                        );
                    }
                })
            }
            Some(Command::Openapi) => {
                println!("{}", gatehouse::api::spec_json());
                Ok(())
            }
        }
    });
    drop(runtime);
    // Everything logged is written before the last word.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(err.to_string()),
    }
}

/// A time as RFC 3339 (UTC).
fn format_time(time: gatehouse::clock::UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(time.as_millis())
        .map_or_else(|| time.to_string(), |time| time.to_rfc3339())
}

fn fail(message: String) -> ExitCode {
    eprintln!("gatehouse: error: {message}");
    ExitCode::from(2)
}

/// Logs go to standard error (standard output carries `gatehouse openapi`),
/// as text or as JSON objects (`--log-format`);
/// the level comes from GATEHOUSE_LOG or RUST_LOG, default `info`. Colours
/// only on a terminal: a log file or collector gets plain text. Lines are
/// written by a thread of their own, so a request never waits on a slow
/// terminal, pipe or disk, in batches; should that thread fall behind by more than its
/// queue (128k lines), further lines are dropped rather than held. The
/// guard writes what is queued when it is dropped.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GATEHOUSE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Buffered: the thread writes what has queued up in one go, and flushes
    // whenever the queue is empty, so a quiet server's lines are not held.
    let stderr = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking(stderr);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // The request id's span is flattened into each line's fields.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
    guard
}

/// Has glibc's allocator map blocks of 1 MiB and more (an Argon2 hash's
/// 19 MiB) on their own and unmap them when freed, instead of keeping them
/// in per-thread arenas: the resident size falls back after a login flood.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first in `main`, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// `gatehouse client …`: each prints JSON on standard output.
async fn run_client_command(command: ClientCommand) -> Result<(), gatehouse::StartError> {
    let printed = match command {
        ClientCommand::Create {
            name,
            client_id,
            confidential,
            first_party,
            grant_types,
            redirect_uris,
            client_scopes,
            args,
        } => {
            let new = gatehouse::auth::clients::NewClient {
                name,
                client_id,
                confidential,
                first_party,
                grant_types,
                redirect_uris,
                scopes: client_scopes,
            };
            gatehouse::create_client(new, &args).await?
        }
        ClientCommand::List(args) => gatehouse::list_clients(&args).await?,
        ClientCommand::Disable { client_id, args } => {
            gatehouse::disable_client(&client_id, &args).await?;
            serde_json::json!({"client_id": client_id, "disabled": true})
        }
        ClientCommand::RotateSecret { client_id, args } => {
            gatehouse::rotate_client_secret(&client_id, &args).await?
        }
    };
    println!("{printed}");
    Ok(())
}
