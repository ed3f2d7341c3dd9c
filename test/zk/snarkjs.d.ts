// Minimal types for the parts of snarkjs (which ships none) that the claim circuit uses.
declare module 'snarkjs' {
  export interface Groth16Proof {
    pi_a: string[]
    pi_b: string[][]
    pi_c: string[]
    protocol: string
    curve: string
  }
  export interface VerificationKey {
    protocol: string
    curve: string
    nPublic: number
    [k: string]: unknown
  }
  type Logger = { info?(m: string): void; debug?(m: string): void; warn?(m: string): void; error?(m: string): void }
  export const groth16: {
    fullProve(
      input: Record<string, unknown>,
      wasmFile: string | Uint8Array,
      zkeyFile: string | Uint8Array,
      logger?: Logger,
    ): Promise<{ proof: Groth16Proof; publicSignals: string[] }>
    verify(vk: VerificationKey, publicSignals: (string | bigint)[], proof: Groth16Proof, logger?: Logger): Promise<boolean>
  }
  export const zKey: {
    exportVerificationKey(zkeyFile: string | Uint8Array, logger?: Logger): Promise<VerificationKey>
    verifyFromR1cs(r1cs: string, ptau: string, zkey: string, logger?: Logger): Promise<boolean>
    newZKey(r1cs: string, ptau: string, zkey: string, logger?: Logger): Promise<unknown>
    beacon(oldZkey: string, newZkey: string, name: string, beaconHashHex: string, numIterationsExp: number, logger?: Logger): Promise<unknown>
    contribute(oldZkey: string, newZkey: string, name: string, entropy: string, logger?: Logger): Promise<unknown>
  }
  export const powersOfTau: {
    newAccumulator(curve: unknown, power: number, file: string, logger?: Logger): Promise<unknown>
    beacon(oldPtau: string, newPtau: string, name: string, beaconHashHex: string, numIterationsExp: number, logger?: Logger): Promise<unknown>
    contribute(oldPtau: string, newPtau: string, name: string, entropy: string, logger?: Logger): Promise<unknown>
    preparePhase2(oldPtau: string, newPtau: string, logger?: Logger): Promise<unknown>
  }
  export const curves: {
    getCurveFromName(name: string): Promise<{ terminate(): Promise<void> }>
  }
}
