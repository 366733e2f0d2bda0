/**
 * The README's getting-started examples, read from README.md between the
 * `<!-- getting-started:<target> -->` markers: each file is a fenced block right after a line
 * ending in "`<file name>`:".
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/run.js';

export type Target = 'kubernetes' | 'azure';

/** File name → content of every file block between the target's markers. */
export function gettingStarted(target: Target): Map<string, string> {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`<!-- getting-started:${target} -->`);
  const end = readme.indexOf(`<!-- /getting-started:${target} -->`);
  if (start < 0 || end < start) throw new Error(`README.md has no getting-started:${target} markers`);
  const files = new Map<string, string>();
  for (const match of readme.slice(start, end).matchAll(/`([\w.-]+)`:\n\n```\w*\n([\s\S]*?)\n```/g)) {
    files.set(match[1]!, `${match[2]!}\n`);
  }
  return files;
}

/** A file of the target's example; the ESM project files the Azure example shares come from Kubernetes. */
export function exampleFile(target: Target, name: string): string {
  const content = gettingStarted(target).get(name) ?? gettingStarted('kubernetes').get(name);
  if (content === undefined) throw new Error(`README.md's getting-started:${target} has no ${name}`);
  return content;
}
