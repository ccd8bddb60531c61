// pm2 process file: `pm2 start ecosystem.config.cjs`.
// Ponte forks its own cluster workers, so pm2 runs a single primary (fork mode).
// kill_timeout sits above SHUTDOWN_TIMEOUT_MS so a graceful stop is never cut short;
// wait_ready makes pm2 wait for the primary's "ready" (all workers up).
module.exports = {
  apps: [
    {
      name: 'ponte',
      script: 'dist/main.js',
      exec_mode: 'fork',
      instances: 1,
      node_args: '--enable-source-maps',
      env: { NODE_ENV: 'production' },
      kill_timeout: 30000,
      wait_ready: true,
      listen_timeout: 60000,
      max_restarts: 20,
      restart_delay: 2000,
      exp_backoff_restart_delay: 1000,
      merge_logs: true,
      time: false,
    },
  ],
};
