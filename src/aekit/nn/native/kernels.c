/* aekit's native CPU kernels for the SAE training step (float32, row-major, contiguous).
 *
 * Compiled on first use by aekit/nn/native/__init__.py (cc -O3 -march=native -fopenmp) and called through
 * ctypes, which releases the GIL. OpenMP here resolves to the libgomp that PyTorch already loaded (same
 * soname), so these kernels share PyTorch's thread pool and its thread count instead of competing with it.
 * Every kernel parallelises over output rows, each row summed in a fixed order: results are identical from
 * run to run and for any thread count.
 *
 * One translation unit (a unity build) so the files below share their static helpers and the compiler can
 * inline across them; each file is one family of kernels.
 */
#include "common.h"

#include "topk.c"            /* top-k of (pre + bias) per row */
#include "sparse_products.c" /* products with a k-sparse code matrix, the fused decoder + squared error */
#include "screen.c"          /* top-k screened through a bfloat16 product (uses both files above) */
#include "row_ops.c"         /* unit-norm decoder constraints, sums of squares, grouping, firing counts */
#include "gated.c"           /* the Gated SAE's magnitude path */
