#!/usr/bin/env node
// Splits string literals on lines longer than the formatter's width into `'...' + '...'` at spaces: the text is unchanged.
// Run it after the formatter, then format again so that each piece gets its own line; comments are left to a person.
import { readFileSync, writeFileSync } from 'node:fs';
import ts from 'typescript';
import { longLines, WIDTH } from './long-lines.mjs';

const root = new URL('..', import.meta.url).pathname;
// Room left for the continuation indent, the quotes and the ` +` the formatter adds around each piece.
const SLACK = 12;
const MIN_PIECE = 30;

// Parents where `a + b` may stand in for one literal without parentheses.
const BARE = new Set([
  ts.SyntaxKind.CallExpression,
  ts.SyntaxKind.NewExpression,
  ts.SyntaxKind.PropertyAssignment,
  ts.SyntaxKind.VariableDeclaration,
  ts.SyntaxKind.ArrayLiteralExpression,
  ts.SyntaxKind.ReturnStatement,
  ts.SyntaxKind.ConditionalExpression,
  ts.SyntaxKind.ParenthesizedExpression,
  ts.SyntaxKind.TemplateSpan,
  ts.SyntaxKind.Parameter,
  ts.SyntaxKind.ArrowFunction,
]);
const BARE_OPERATORS = new Set([
  ts.SyntaxKind.PlusToken,
  ts.SyntaxKind.EqualsToken,
  ts.SyntaxKind.EqualsEqualsEqualsToken,
  ts.SyntaxKind.ExclamationEqualsEqualsToken,
  ts.SyntaxKind.QuestionQuestionToken,
  ts.SyntaxKind.BarBarToken,
  ts.SyntaxKind.AmpersandAmpersandToken,
  ts.SyntaxKind.CommaToken,
]);

function needsParens(node) {
  const p = node.parent;
  if (p.kind === ts.SyntaxKind.CallExpression || p.kind === ts.SyntaxKind.NewExpression) return p.expression === node;
  if (BARE.has(p.kind)) return false;
  if (p.kind === ts.SyntaxKind.BinaryExpression) return !BARE_OPERATORS.has(p.operatorToken.kind);
  return true;
}

// A literal whose type matters (`as const`, a type, a key, a module name) must stay one literal.
function splittable(node) {
  const p = node.parent;
  if (ts.isLiteralTypeNode(p) || ts.isImportDeclaration(p) || ts.isExportDeclaration(p) || ts.isExternalModuleReference(p)) return false;
  if (ts.isTaggedTemplateExpression(p) || ts.isImportTypeNode(p)) return false;
  if ((ts.isPropertyAssignment(p) || ts.isPropertySignature(p) || ts.isEnumMember(p) || ts.isMethodDeclaration(p)) && p.name === node) return false;
  if (ts.isCallExpression(p) && p.expression.kind === ts.SyntaxKind.ImportKeyword) return false;
  for (let a = p; a && !ts.isStatement(a); a = a.parent) {
    if ((ts.isAsExpression(a) || ts.isSatisfiesExpression(a)) && a.type.getText() === 'const') return false;
  }
  return true;
}

// Offsets (in the file) where a piece may end: just after an unescaped space in the literal's own text.
function splitPoints(node, text) {
  const regions = [];
  if (ts.isTemplateExpression(node)) {
    regions.push([node.head.getStart() + 1, node.head.end - 2]);
    for (const s of node.templateSpans) {
      const l = s.literal;
      regions.push([l.getStart() + 1, l.end - (ts.isTemplateTail(l) ? 1 : 2)]);
    }
  } else {
    regions.push([node.getStart() + 1, node.end - 1]);
  }
  const points = [];
  for (const [from, to] of regions) {
    for (let i = from; i < to - 1; i++) {
      if (text[i] !== ' ' || text[i + 1] === ' ') continue;
      let slashes = 0;
      for (let j = i - 1; j >= from && text[j] === '\\'; j--) slashes++;
      if (slashes % 2 === 0) points.push(i + 1);
    }
  }
  return points;
}

function splitLiteral(node, text, budget) {
  const start = node.getStart();
  const end = node.end;
  const quote = text[start];
  const points = splitPoints(node, text);
  const cuts = [];
  let from = start;
  while (end - from > budget) {
    const fit = points.filter((p) => p - from >= MIN_PIECE && p - from <= budget && end - p >= MIN_PIECE);
    const next = fit.length > 0 ? fit[fit.length - 1] : points.find((p) => p - from > budget && end - p >= MIN_PIECE);
    if (next === undefined) break;
    cuts.push(next);
    from = next;
  }
  if (cuts.length === 0) return null;
  let out = '';
  let at = start;
  for (const c of cuts) {
    out += `${text.slice(at, c)}${quote} + ${quote}`;
    at = c;
  }
  out += text.slice(at, end);
  return needsParens(node) ? `(${out})` : out;
}

function splitFile(path, long) {
  const text = readFileSync(path, 'utf8');
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, path.endsWith('.mjs') ? ts.ScriptKind.JS : ts.ScriptKind.TS);
  const edits = [];
  const visit = (node) => {
    const literal = ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateExpression(node);
    if (literal) {
      const { line } = sf.getLineAndCharacterOfPosition(node.getStart());
      const endLine = sf.getLineAndCharacterOfPosition(node.end).line;
      if (line === endLine && long.has(line + 1) && splittable(node)) {
        const lineText = text.split('\n')[line];
        const indent = /^ */.exec(lineText)[0].length;
        // A literal that fits alone but not with the code around it is cut short enough to take the overflow with it.
        const overflow = lineText.length - WIDTH;
        const replaced = splitLiteral(node, text, Math.min(WIDTH - indent - SLACK, node.end - node.getStart() - overflow - 2));
        if (replaced !== null) edits.push({ start: node.getStart(), end: node.end, replaced });
        return;
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  if (edits.length === 0) return 0;
  let out = text;
  for (const e of edits.sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.replaced + out.slice(e.end);
  writeFileSync(path, out);
  return edits.length;
}

const byFile = new Map();
for (const l of longLines()) {
  const [file, line] = l.split(':');
  if (!byFile.has(file)) byFile.set(file, new Set());
  byFile.get(file).add(Number(line));
}
let total = 0;
for (const [file, lines] of byFile) total += splitFile(`${root}${file}`, lines);
console.log(`split ${total} string literal(s)`);
