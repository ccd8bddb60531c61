// pm2 process file: `pm2 start ecosystem.config.cjs` (after `npm install && npm run build`).
// Ponte forks its own cluster workers (MAX_WORKERS), so pm2 runs one primary in fork mode.
// - kill_timeout sits above SHUTDOWN_TIMEOUT_MS (25 s by default) so a graceful stop is never cut short;
// - wait_ready: pm2 waits for the primary's "ready", sent once every worker is up;
// - configuration comes from .env in this folder (the daemon reads it itself).
module.exports = {
  apps: [
    {
      name: 'ponte',
      cwd: __dirname,
      script: 'dist/main.js',
      exec_mode: 'fork',
      instances: 1,
      node_args: '--enable-source-maps',
      env: { NODE_ENV: 'production' },
      kill_timeout: 30000,
      wait_ready: true,
      listen_timeout: 60000,
      max_memory_restart: '4G',
      max_restarts: 20,
      restart_delay: 2000,
      exp_backoff_restart_delay: 1000,
      out_file: `${__dirname}/logs/ponte.out.log`,
      error_file: `${__dirname}/logs/ponte.err.log`,
      merge_logs: true,
      time: false,
    },
  ],
};
