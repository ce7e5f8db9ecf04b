//! `tasks [--addr HOST:PORT] [--database-url URL]`: serves the tasks app.

use clap::Parser;

/// tasks: a to-do list built on bgsync's public API only.
#[derive(Parser)]
#[command(name = "tasks", version)]
struct Flags {
    /// Where to listen.
    #[arg(long, env = "TASKS_ADDR", value_name = "HOST:PORT", default_value = "127.0.0.1:8081")]
    addr: std::net::SocketAddr,
    /// sqlite://PATH (created if absent) or postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", default_value = "sqlite://tasks.db")]
    database_url: String,
}

fn main() {
    let flags = Flags::parse();
    bgsync_server::serve::init_logging().unwrap_or_else(|e| fail(&e));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(&format!("cannot start: {e}")));
    if let Err(e) = runtime.block_on(tasks::serve(flags.addr, &flags.database_url)) {
        fail(&e.to_string());
    }
}

fn fail(message: &str) -> ! {
    eprintln!("tasks: {message}");
    std::process::exit(2)
}
