/**
 * A bench run's data directory, removed on the way out: after the run, on an error, and on
 * a signal (the bench's handlers call removeRunDir).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'

let runDir: string | null = null

/** Makes the run's directory under `parent`; one per process. */
export function makeRunDir (parent: string, prefix: string): string {
  runDir = mkdtempSync(join(parent, prefix))
  return runDir
}

export function removeRunDir (): void {
  if (runDir !== null) rmSync(runDir, { recursive: true, force: true })
  runDir = null
}
