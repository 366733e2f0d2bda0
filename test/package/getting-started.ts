/**
 * The getting-started examples: `main.ts` from README.md between the
 * `<!-- getting-started:<target> -->` markers, and the files of an ESM project from
 * docs/constructs.md between `<!-- getting-started:esm-<target> -->`. Each file is a fenced block
 * right after a line ending in "`<file name>`:".
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/run.js';

export type Target = 'kubernetes' | 'azure';

/** File name → content of every file block between a page's `<!-- getting-started:<section> -->` markers. */
function filesBetweenMarkers(page: string, section: string): Map<string, string> {
  const text = readFileSync(join(REPO_ROOT, page), 'utf8');
  const start = text.indexOf(`<!-- getting-started:${section} -->`);
  const end = text.indexOf(`<!-- /getting-started:${section} -->`);
  if (start < 0 || end < start) throw new Error(`${page} has no getting-started:${section} markers`);
  const files = new Map<string, string>();
  for (const match of text.slice(start, end).matchAll(/`([\w.-]+)`:\n\n```\w*\n([\s\S]*?)\n```/g)) {
    files.set(match[1]!, `${match[2]!}\n`);
  }
  return files;
}

/** A file of the target's example; the ESM project files the Azure example shares come from Kubernetes. */
export function exampleFile(target: Target, name: string): string {
  const content =
    filesBetweenMarkers('README.md', target).get(name) ??
    filesBetweenMarkers('docs/constructs.md', `esm-${target}`).get(name) ??
    filesBetweenMarkers('docs/constructs.md', 'esm-kubernetes').get(name);
  if (content === undefined) throw new Error(`the getting-started:${target} example has no ${name}`);
  return content;
}
