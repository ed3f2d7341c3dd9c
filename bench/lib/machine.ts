/**
 * What a bench prints about where it ran: package versions and the disk under its data.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The installed version of an npm package of this project. */
export function packageVersion (pkg: string): string {
  const file = fileURLToPath(new URL(`../../node_modules/${pkg}/package.json`, import.meta.url))
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

/** The filesystem a directory is on (device, type, mount point), from df. */
export function diskOf (dir: string): string {
  try {
    const out = execFileSync('df', ['-PT', dir], { encoding: 'utf8' }).trim().split('\n')[1].split(/\s+/)
    return `${out[0]} (${out[1]}, mounted on ${out[6]})`
  } catch {
    return 'unknown filesystem'
  }
}
