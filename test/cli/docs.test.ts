import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GLOBAL_OPTIONS, leafCommands, longName, shortName, takesValue, type OptionDef } from '../../src/cli/commands-table.js';
import { EXIT_CODE_DOCS } from '../../src/core/errors.js';
import { BEGIN, docsReference, headingCommand, renderDocsPage } from '../../src/cli/docs-reference.js';

const root = new URL('../../', import.meta.url).pathname;
const pages = readdirSync(`${root}docs`).filter((f) => f.endsWith('.md'));
const read = (path: string) => readFileSync(`${root}${path}`, 'utf8');
const documented = (def: object) => !(def as { hidden?: boolean }).hidden;

describe('docs/', () => {
  it('has a heading for every command of the table, on one page only', () => {
    const headings = new Map<string, string[]>();
    for (const f of pages) {
      for (const line of read(`docs/${f}`).split('\n')) {
        const name = headingCommand(line);
        if (name) headings.set(name, [...(headings.get(name) ?? []), f]);
      }
    }
    for (const { path } of leafCommands().filter((l) => documented(l.def))) {
      expect(headings.get(path.join(' ')), `no "## knarr ${path.join(' ')}" heading in docs/`).toHaveLength(1);
    }
  });

  it('command blocks are up to date with the command table (run `npm run gen` when this fails)', () => {
    const fresh = docsReference(root);
    for (const [path, text] of Object.entries(fresh)) expect(read(path), path).toBe(text);
    const blocks = Object.values(fresh).join('').split(BEGIN).length - 1;
    expect(blocks).toBe(leafCommands().filter((l) => documented(l.def)).length);
  });

  it('the generator puts usage, options and examples under a heading, and keeps the text around it', () => {
    const page = '# x\n\n## knarr pool destroy\n\nhand-written text\n';
    const once = renderDocsPage(page);
    expect(once).toContain('knarr pool destroy [options] POOL');
    expect(once).toContain('| `--yes` |');
    expect(once).toContain('knarr pool destroy scratch --yes');
    expect(once).toMatch(/<!-- end of generated block -->\n\nhand-written text\n$/);
    expect(renderDocsPage(once)).toBe(once);
  });

  it('every relative link of the README and docs/ points at a file that exists', () => {
    for (const path of ['README.md', ...pages.map((f) => `docs/${f}`)]) {
      for (const m of read(path).matchAll(/\]\(([^)#:\s]+)(#[^)]*)?\)/g)) {
        expect(existsSync(join(root, dirname(path), m[1]!)), `${path}: ${m[1]}`).toBe(true);
      }
    }
  });

  it('docs/output.md lists every exit code as the man page does', () => {
    const output = read('docs/output.md');
    for (const e of EXIT_CODE_DOCS) expect(output).toContain(`| ${e.code} | ${e.meaning.replace(/\|/g, '\\|')} |`);
  });

  it('the README is a front door: under 250 lines', () => {
    expect(read('README.md').split('\n').length).toBeLessThan(250);
  });
});

/** The images scripts/install.sh leaves on the docker engine: the one doctor --fix imports and the names it tags it with. */
function installedImages(): Set<string> {
  const script = read('scripts/install.sh');
  const names = [...script.matchAll(/docker tag (\S+) (\S+)/g)].flatMap((m) => [m[1]!, m[2]!]);
  return new Set(names.flatMap((n) => (n.endsWith(':latest') ? [n, n.slice(0, -':latest'.length)] : [n])));
}

const jobRun = leafCommands().find((l) => l.path.join(' ') === 'job run')!.def;
const valueFlags = new Set(
  [...GLOBAL_OPTIONS, ...(jobRun.options ?? [])]
    .filter((o: OptionDef) => takesValue(o.flags))
    .flatMap((o) => [`--${longName(o.flags)}`, ...(shortName(o.flags) ? [`-${shortName(o.flags)}`] : [])]),
);

/** The image each `knarr job run|plan` in a command line names (none for one that reads it from -f). */
function jobImages(line: string): string[] {
  const images: string[] = [];
  for (const m of line.matchAll(/\bknarr\b((?:\s+-\S+)*)\s+job\s+(?:run|plan)\b([^|;&]*)/g)) {
    const words = m[2]!.trim().split(/\s+/);
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!;
      if (w === '--' || w.startsWith('#')) break;
      if (w.startsWith('-')) {
        if (valueFlags.has(w)) i++;
        continue;
      }
      images.push(w);
      break;
    }
  }
  return images;
}

/** The lines inside the plain and sh fences of a markdown text (yaml, text and other fences left out). */
function shellLines(text: string): string[] {
  const out: string[] = [];
  let fence: string | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fence = fence === null ? line.slice(3) : null;
    else if (fence === '' || fence === 'sh') out.push(line);
  }
  return out;
}

describe('printed examples run on the install', () => {
  const installed = installedImages();

  it('the install provides busybox, the image the examples name', () => {
    expect([...installed]).toEqual(expect.arrayContaining(['busybox', 'busybox:latest']));
    expect(jobImages('echo hi | knarr job run -i --network none busybox -- tr a-z A-Z | knarr --json job plan -p 80:80 other:1 -- x')).toEqual([
      'busybox',
      'other:1',
    ]);
    expect(jobImages('knarr job run -f job.yaml')).toEqual([]);
  });

  it('every job example of the command table (--help) uses an image the install provides', () => {
    const examples = leafCommands().flatMap(({ def }) => (def.examples ?? []).map((e) => e.command));
    const images = examples.flatMap(jobImages);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(installed, image).toContain(image);
  });

  it('every job run in the README and in the commands of docs/ uses an image the install provides', () => {
    for (const path of ['README.md', ...pages.map((f) => `docs/${f}`)]) {
      const lines = shellLines(read(path)).map((l) => l.replace(/^\$ /, ''));
      for (const image of lines.filter((l) => !l.startsWith('knarr job run [') && !l.startsWith('knarr job plan [')).flatMap(jobImages)) {
        expect(installed, `${path}: ${image}`).toContain(image);
      }
    }
  });

  it("every cluster example's --image is one an example imports, or the default base", () => {
    const examples = leafCommands().flatMap(({ def }) => (def.examples ?? []).map((e) => e.command));
    const imported = new Set(['base', ...examples.flatMap((c) => [...c.matchAll(/knarr image import (\S+)/g)].map((m) => m[1]!))]);
    for (const c of examples.filter((e) => /knarr cluster create/.test(e))) {
      const image = /--image[ =](\S+)/.exec(c)?.[1] ?? 'base';
      expect(imported, c).toContain(image);
    }
  });
});
