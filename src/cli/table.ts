// Plain-text tables for terminal output: left-aligned columns separated by three spaces, no
// trailing whitespace, so output is stable for `grep` and `awk`.
const columnGap = '   ';

export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    widths
      .map((w, i) => (cells[i] ?? '').padEnd(w))
      .join(columnGap)
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** "key: value" lines with the values aligned; a list value continues on indented lines. */
export function formatKeyValues(
  entries: ReadonlyArray<readonly [string, string | readonly string[]]>,
): string {
  const width = Math.max(0, ...entries.map(([k]) => k.length + 1));
  const out: string[] = [];
  for (const [key, value] of entries) {
    const values = typeof value === 'string' ? [value] : value.length > 0 ? value : ['-'];
    values.forEach((v, i) => {
      out.push(`${(i === 0 ? `${key}:` : '').padEnd(width)} ${v}`.trimEnd());
    });
  }
  return out.join('\n');
}
