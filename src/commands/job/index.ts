import { defineCommand, defineGroup } from '../define.js';

const jobArg = { job: { description: 'job name', required: true } } as const;
const imageArgs = {
  image: { description: 'image (or give it in -f)', completes: 'docker-image' },
  command: { description: 'command and arguments, after --', variadic: true },
} as const;

/** The flags of job run; job plan takes every one of them, so a run line pasted into plan works. */
const runOptions = {
  interactive: { flags: '-i, --interactive', description: 'pipe stdin to the job (end-of-file included)' },
  file: { flags: '-f, --file <file>', description: 'job spec, YAML or JSON' },
  name: { flags: '--name <name>', description: 'job name (default run-<random>)' },
  env: { flags: '-e, --env <NAME=VALUE>', description: 'environment variable', repeatable: true },
  network: { flags: '--network <mode>', description: "docker network mode (default: the engine's)" },
  host: { flags: '--host <host>', description: 'pin the job to this fleet host' },
  tags: { flags: '--tag <tag>', description: 'run only on hosts with this tag', repeatable: true },
  ports: { flags: '-p, --port <HOST:CONTAINER>', description: 'publish a port (makes the job daemonized)', repeatable: true },
  volumes: { flags: '--volume <SOURCE:TARGET>', description: 'dot:DOT[.SUBDOT]:/path or /host/path:/path, :ro for read-only', repeatable: true },
  links: { flags: '--link <service>', description: "reach this service through the host's ambassador", repeatable: true },
  restart: { flags: '--restart <policy>', description: 'no, always or on-failure[:N] (daemonized jobs)' },
  cpu: { flags: '--cpu <cpu>', description: 'cpu to reserve: 0.5, 2 or 500m' },
  memory: { flags: '--memory <size>', description: 'memory to reserve and limit to: 256M, 2G' },
  fixed: { flags: '--fixed', description: 'the job stays on the host it first ran on (default with volumes or --static)' },
  static: { flags: '--static', description: 'left alone by job restart --all (and fixed)' },
  detach: { flags: '-d, --detach', description: 'daemonize the job (as daemonize: true)' },
} as const;

const run = defineCommand(
  {
    name: 'run',
    summary: 'run a job in the foreground; exits with its exit code',
    args: imageArgs,
    options: runOptions,
    examples: [
      { command: 'echo hello | knarr job run -i busybox -- tr a-z A-Z | knarr job run -i busybox -- wc -c', description: 'a pipeline of jobs' },
      { command: "knarr job run busybox -- sh -c 'exit 3'; echo $?", description: 'knarr exits 3' },
      { command: 'knarr job run -f job.yaml', description: 'a job from a spec file' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./run.js')).jobRun(args.image, args.command, options, ctx),
);

const plan = defineCommand(
  {
    name: 'plan',
    summary: 'the host the scheduler would choose, and why each other host lost',
    description:
      'Takes every flag of job run, so a run line works with run changed to plan; the spec is checked as run checks it. Flags that do not ' +
      'change where a job goes (-i) are accepted and noted on stderr.',
    args: imageArgs,
    options: {
      ...runOptions,
      strategy: {
        flags: '--strategy <strategy>',
        description: "spread or binpack (default: the config file's scheduler.strategy, else spread)",
        choices: ['spread', 'binpack'],
      },
    },
    examples: [
      { command: 'knarr job plan -f job.yaml', description: 'where job.yaml would run' },
      { command: 'knarr job plan -p 8080:80 --memory 256M busybox -- httpd -f', description: 'a job run line, with run changed to plan' },
    ],
    dryRun: 'reads',
  },
  async ({ args, options }, ctx) => (await import('./plan.js')).jobPlan(args.image, args.command, options, ctx),
);

const list = defineCommand(
  {
    name: 'list',
    aliases: ['ps'],
    summary: 'daemonized jobs: intent and actual state',
    examples: [{ command: 'knarr job list', description: 'jobs of the fleet' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./manage.js')).jobList(ctx),
);

/** `knarr ps`: what people type for the jobs, as they would with docker. */
export const ps = defineCommand(
  {
    name: 'ps',
    summary: 'daemonized jobs: intent and actual state (the same as job list)',
    examples: [{ command: 'knarr ps -o wide', description: 'jobs of the fleet, with containers and times' }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./manage.js')).jobList(ctx),
);

const show = defineCommand(
  {
    name: 'show',
    summary: 'a daemonized job: spec, host, state',
    args: jobArg,
    examples: [{ command: 'knarr --json job show web', description: 'web as JSON' }],
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('../events/recent.js')).withRecentEvents(ctx, 'job', args.job, (await import('./manage.js')).jobShow(args.job, ctx)),
);

const logs = defineCommand(
  {
    name: 'logs',
    summary: 'output of a daemonized job (-f to follow)',
    args: jobArg,
    options: {
      follow: { flags: '-f, --follow', description: 'keep printing new output' },
      tail: { flags: '--tail <lines>', description: 'only the last N lines (default all)' },
      since: { flags: '--since <when>', description: 'only lines since an age (10m, 2h, 1d) or a time (2026-12-06T21:30:00Z)' },
      timestamps: { flags: '--timestamps', description: 'start each line with the time it was written (RFC 3339)' },
    },
    examples: [
      { command: 'knarr job logs web -f', description: "follow web's output" },
      { command: 'knarr job logs web --tail 20 --since 10m --timestamps', description: 'its last 20 lines of the last 10 minutes, with times' },
    ],
    dryRun: 'reads',
  },
  async ({ args, options }, ctx) => (await import('./manage.js')).jobLogs(args.job, options, ctx),
);

const stop = defineCommand(
  {
    name: 'stop',
    summary: 'stop a daemonized job (its intent stays)',
    args: jobArg,
    examples: [{ command: 'knarr job stop web', description: 'stop web' }],
    dryRun: 'plans',
  },
  async ({ args }, ctx) => (await import('./manage.js')).jobStop(args.job, ctx),
);

const rm = defineCommand(
  {
    name: 'rm',
    summary: 'remove a daemonized job, its container and services',
    args: jobArg,
    examples: [{ command: 'knarr job rm web', description: 'remove web' }],
    dryRun: 'plans',
  },
  async ({ args }, ctx) => (await import('./manage.js')).jobRm(args.job, ctx),
);

const restart = defineCommand(
  {
    name: 'restart',
    summary: "make jobs' containers anew (--all: every job that is not static)",
    args: { job: { description: 'job names', variadic: true } },
    options: { all: { flags: '--all', description: 'every daemonized job except static ones' } },
    examples: [
      { command: 'knarr job restart web', description: 'restart web (starts it if stopped)' },
      { command: 'knarr job restart --all', description: 'after a code push' },
    ],
    dryRun: 'plans',
  },
  async ({ args, options }, ctx) => (await import('./manage.js')).jobRestart(args.job, options, ctx),
);

const history = defineCommand(
  {
    name: 'history',
    summary: 'where a job was placed, started, moved and exited (kept after rm)',
    args: jobArg,
    examples: [{ command: 'knarr job history web', description: "web's past" }],
    dryRun: 'reads',
  },
  async ({ args }, ctx) => (await import('./manage.js')).jobHistory(args.job, ctx),
);

export const job = defineGroup({
  name: 'job',
  summary: 'docker jobs across the fleet: foreground (with -i pipes) or daemonized',
  description:
    "Jobs run on docker engines. With no agent in the fleet, on this host's engine (DOCKER_HOST or /var/run/docker.sock): the embedded default. " +
    "When agents (knarr daemon) serve the fleet, the scheduler places each job (knarr job plan shows why) and the job runs through that host's " +
    'agent. -i pipes stdin to the job and its stdout back, binary-safe with end-of-file passed through, so knarr job run -i A | knarr job run -i B ' +
    "chains jobs, on one host or two. Daemonized jobs (ports, -d, or daemonize: true) are kept running by their host's agent: their intent and " +
    'actual state live in etcd, each port is a service, a crashed job restarts per its policy, and a job whose host goes down moves to another ' +
    'host unless it is fixed there.',
  subcommands: [run, plan, list, show, logs, stop, rm, restart, history],
});

const serviceList = defineCommand(
  {
    name: 'list',
    summary: 'each service and where it is reached',
    examples: [{ command: 'knarr service list', description: "the fleet's services" }],
    dryRun: 'reads',
  },
  async (_input, ctx) => (await import('./manage.js')).serviceList(ctx),
);

export const service = defineGroup({
  name: 'service',
  summary: 'services: the ports of daemonized jobs',
  subcommands: [serviceList],
});
