import { readdirSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { GLOBAL_OPTIONS, leafCommands, visible } from '../../src/cli/commands-table.js';
import { generatedFiles } from '../../src/cli/generated.js';
import { SETTINGS } from '../../src/core/settings.js';
import { knarr } from '../harness/cli.js';
import { haveTools, integration } from '../harness/tools.js';

const root = new URL('../../', import.meta.url).pathname;
const files = generatedFiles();

describe('generated completions, man pages and docs/configuration.md', () => {
  it('are up to date with the command and settings tables (run `npm run gen` when this fails)', () => {
    expect(files).toHaveProperty(['docs/configuration.md']);
    for (const [path, text] of Object.entries(files)) expect(readFileSync(`${root}${path}`, 'utf8'), path).toBe(text);
    for (const dir of ['completions', 'man']) {
      for (const f of readdirSync(`${root}${dir}`)) expect(files, `stale file ${dir}/${f}`).toHaveProperty([`${dir}/${f}`]);
    }
  });

  it('`knarr completion SHELL` prints the committed file', async () => {
    for (const [shell, file] of [
      ['bash', 'knarr.bash'],
      ['zsh', '_knarr'],
      ['fish', 'knarr.fish'],
    ]) {
      const r = await knarr(['completion', shell!]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(readFileSync(`${root}completions/${file}`, 'utf8'));
    }
    const bad = await knarr(['completion', 'tcsh']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^knarr: SHELL: unknown shell "tcsh"; use one of bash, zsh, fish$/m);
  });

  it('bash completion offers subcommands, options and option values', async () => {
    const complete = async (...words: string[]) => {
      const script =
        `source ${root}completions/knarr.bash; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _knarr; ` +
        `printf '%s\\n' "\${COMPREPLY[@]}"`;
      return (await execa('bash', ['-c', script])).stdout.split('\n');
    };
    expect(await complete('knarr', '')).toEqual(expect.arrayContaining(['pool', 'etcd', 'doctor', 'completion']));
    // Options once a dash is typed; the hidden lookup command is never offered.
    expect(await complete('knarr', '')).not.toContain('--json');
    expect(await complete('knarr', '-')).toEqual(expect.arrayContaining(['--json', '--dry-run']));
    expect(await complete('knarr', '_')).toEqual(['']);
    expect(await complete('knarr', 'pool', '')).toEqual(expect.arrayContaining(['init', 'status', 'list', 'destroy']));
    expect(await complete('knarr', '--json', 'pool', 'init', '--')).toEqual(expect.arrayContaining(['--driver', '--loop-file', '--force', '--dry-run']));
    expect(await complete('knarr', 'pool', 'init', '--driver', '')).toEqual(['zfs', 'btrfs', 'lvm', 'dir']);
    expect(await complete('knarr', 'completion', '')).toEqual(expect.arrayContaining(['bash', 'zsh', 'fish']));
    expect(await complete('knarr', 'dot', 'remote', '')).toEqual(expect.arrayContaining(['add', 'rm', 'list']));
    // After a leaf command, words are its arguments: its options stay on offer.
    expect(await complete('knarr', 'dot', 'commit', 'app', '--')).toEqual(expect.arrayContaining(['--message', '--meta']));
    expect(await complete('knarr', 'dot', 'pull', 'usb/app', '--')).toContain('--stash-on-divergence');
  });

  it.skipIf(!integration('zsh completion', haveTools('zsh'), 'zsh is not installed'))('zsh completion parses', async () => {
    await execa('zsh', ['-n', `${root}completions/_knarr`]);
  });
  it.skipIf(!integration('fish completion', haveTools('fish'), 'fish is not installed'))('fish completion parses', async () => {
    await execa('fish', ['--no-execute', `${root}completions/knarr.fish`]);
  });

  it("docs/configuration.md and the man page name every setting's variable, and the config file's keys", () => {
    const doc = files['docs/configuration.md']!;
    const man = files['man/knarr.1']!;
    for (const s of SETTINGS) {
      expect(doc, s.env).toContain(`\`${s.env}\``);
      expect(man, s.env).toContain(`.B ${s.env.replace(/-/g, '\\-')}`);
      if (s.inFile !== false) expect(doc, s.key).toContain(`\`${s.key}\``);
    }
    expect(man).toMatch(/\\-\\-no\\-dry\\-run/);
  });

  it('knarr.1 names every command with its synopsis and every setting with its flag, config key and default; no hidden command anywhere', () => {
    const main = files['man/knarr.1']!;
    const roff = (t: string) => t.replace(/\\/g, '\\e').replace(/-/g, '\\-');
    expect(main).not.toMatch(/later release/);
    for (const { path } of leafCommands(visible())) expect(main, path.join(' ')).toContain(`.B ${roff(`knarr ${path.join(' ')}`)}`);
    for (const s of SETTINGS) {
      const entry = main.slice(main.indexOf(`.B ${roff(s.env)}\n`));
      const text = entry.split('\n.TP')[0]!;
      if (s.flag) expect(text, s.env).toContain(roff(s.flag.split(' ')[0]!.replace(/,$/, '')));
      if (s.inFile !== false) expect(text, s.env).toContain(`config key ${roff(s.key)}`);
      expect(text, s.env).toContain('default');
    }
    for (const o of GLOBAL_OPTIONS) expect(main).toContain(`.B ${roff(o.flags)}`);
    expect(main).toMatch(/\.SH SEE ALSO\n\.BR knarr\\-pool \(1\)/);
    for (const [path, text] of Object.entries(files)) if (path.startsWith('man/')) expect(text, path).not.toContain('__complete');
    expect(Object.keys(files).filter((f) => f.includes('__'))).toEqual([]);
    expect(files['completions/knarr.bash']).toMatch(/^ {4}''\) kids='pool etcd [a-z ]+' ;;$/m);
  });

  it.skipIf(!integration('man pages', haveTools('man', 'groff'), 'needs man-db and groff'))(
    'render with groff and man without a warning, and the install puts them where man finds them',
    async () => {
      for (const page of readdirSync(`${root}man`)) {
        const groff = await execa('groff', ['-man', '-Tutf8', '-ww', '-z', `${root}man/${page}`]);
        expect(groff.stderr, page).toBe('');
        const man = await execa('man', ['--warnings', '-l', `${root}man/${page}`], { env: { MANWIDTH: '80', LC_ALL: 'C.UTF-8' } });
        expect(man.stderr, page).toBe('');
      }
      const manRoot = mkdtempSync(`${tmpdir()}/knarr-man-`);
      try {
        for (let i = 0; i < 2; i++) await execa('bash', [`${root}scripts/install-man.sh`, manRoot]);
        const env = { MANPATH: manRoot, MANWIDTH: '100', LC_ALL: 'C.UTF-8' };
        const dot = await execa('man', ['knarr-dot'], { env });
        expect(dot.stdout).toMatch(/knarr dot commit \[OPTIONS\] DOT/);
        expect((await execa('man', ['knarr'], { env })).stdout).toMatch(/EXIT STATUS/);
      } finally {
        rmSync(manRoot, { recursive: true, force: true });
      }
    },
    60_000,
  );

  it.skipIf(!integration('fish completion', haveTools('fish'), 'fish is not installed'))(
    'the install puts completion where each shell looks: fish finds it with no set-up',
    async () => {
      const dest = mkdtempSync(`${tmpdir()}/knarr-completions-`);
      try {
        for (let i = 0; i < 2; i++) await execa('bash', [`${root}scripts/install-completions.sh`, dest]);
        for (const f of ['usr/local/share/bash-completion/completions/knarr', 'usr/local/share/zsh/site-functions/_knarr', 'etc/fish/completions/knarr.fish'])
          expect(existsSync(`${dest}/${f}`), f).toBe(true);
        // bash-completion loads it from XDG_DATA_DIRS (/usr/local/share by default) on the first tab.
        const loaded = await execa('bash', ['-c', 'source /usr/share/bash-completion/bash_completion; _completion_loader knarr; complete -p knarr'], {
          env: { ...process.env, XDG_DATA_DIRS: `${dest}/usr/local/share` },
        });
        expect(loaded.stdout).toBe('complete -F _knarr knarr');
        // fish looks in /etc/fish/completions by itself; here the same folder under the test's root.
        const offered = await execa('fish', ['--no-config', '-c', `set -p fish_complete_path ${dest}/etc/fish/completions; complete -C 'knarr comp'`]);
        expect(offered.stdout).toMatch(/^completion\b/m);
      } finally {
        rmSync(dest, { recursive: true, force: true });
      }
    },
    60_000,
  );

  it('man pages cover every command, the exit codes and the environment', () => {
    const main = files['man/knarr.1']!;
    expect(main).toMatch(/\.SH EXIT STATUS/);
    expect(main).toMatch(/KNARR_STATE_DIR/);
    for (const { path } of leafCommands(visible())) {
      expect(files[`man/knarr-${path[0]}.1`], path.join(' ')).toContain(`.SS knarr ${path.join(' ')}`.replace(/-/g, '\\-'));
    }
  });
});
