pragma circom 2.1.0;

// Metanode claim circuit (Semaphore-style). See docs/zklock.md for the full specification.
//
// A device proves, without revealing which device it is, that:
//   1. it knows `secret` such that leaf = Poseidon(secret) is a leaf of the Merkle tree
//      (depth DEPTH, Poseidon(2) nodes) whose root is the public input `root`;
//   2. nullifierHash = Poseidon(secret, epoch), so it can claim at most once per epoch;
//   3. the proof is bound to `signalHash`, which the hub recomputes from the claim's content
//      (recipient, amount, epoch): a proof cannot be replayed for another recipient or amount.
//
// Public signals, in this order (circom orders public inputs as declared in the template;
// the circuit has no outputs): [root, nullifierHash, signalHash, epoch].

include "circomlib/circuits/poseidon.circom";

// One level of the path: orders (node, sibling) by `index` and hashes the pair.
// index = 0: node is the left child  -> Poseidon(node, sibling)
// index = 1: node is the right child -> Poseidon(sibling, node)
template MerkleLevel() {
    signal input node;
    signal input sibling;
    signal input index;
    signal output parent;

    index * (1 - index) === 0;                  // index is a bit

    signal swap <== index * (sibling - node);   // 0, or (sibling - node) when index = 1
    component h = Poseidon(2);
    h.inputs[0] <== node + swap;                // left
    h.inputs[1] <== sibling - swap;             // right
    parent <== h.out;
}

// Root of the Merkle path from `leaf`; pathIndices[i] is bit i of the leaf's index
// (level 0 is next to the leaves).
template MerkleInclusion(DEPTH) {
    signal input leaf;
    signal input pathElements[DEPTH];
    signal input pathIndices[DEPTH];
    signal output root;

    component levels[DEPTH];
    signal nodes[DEPTH + 1];
    nodes[0] <== leaf;
    for (var i = 0; i < DEPTH; i++) {
        levels[i] = MerkleLevel();
        levels[i].node <== nodes[i];
        levels[i].sibling <== pathElements[i];
        levels[i].index <== pathIndices[i];
        nodes[i + 1] <== levels[i].parent;
    }
    root <== nodes[DEPTH];
}

template Claim(DEPTH) {
    // Public inputs (order matters: it is the order of the public signals).
    signal input root;
    signal input nullifierHash;
    signal input signalHash;
    signal input epoch;

    // Private inputs.
    signal input secret;
    signal input pathElements[DEPTH];
    signal input pathIndices[DEPTH];

    // Membership: leaf = Poseidon(secret) is in the tree whose root is the public `root`.
    component leafHash = Poseidon(1);
    leafHash.inputs[0] <== secret;

    component tree = MerkleInclusion(DEPTH);
    tree.leaf <== leafHash.out;
    for (var i = 0; i < DEPTH; i++) {
        tree.pathElements[i] <== pathElements[i];
        tree.pathIndices[i] <== pathIndices[i];
    }
    root === tree.root;

    // One claim per identity and epoch.
    component nullifier = Poseidon(2);
    nullifier.inputs[0] <== secret;
    nullifier.inputs[1] <== epoch;
    nullifierHash === nullifier.out;

    // Bind the proof to the claim's content. signalHash takes part in no other constraint;
    // this quadratic constraint keeps it in the R1CS (the Semaphore trick), so that the
    // proof is malleable in no public input.
    signal signalHashSquared <== signalHash * signalHash;
}

component main {public [root, nullifierHash, signalHash, epoch]} = Claim(20);
