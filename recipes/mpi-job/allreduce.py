"""Every rank contributes a vector; MPI sums them (what Horovod does with gradients)."""
import os
import socket

import numpy as np
from mpi4py import MPI

from batchai_jupyter import Run

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
local = np.full(4, rank + 1.0)
total = np.empty_like(local)
comm.Allreduce(local, total, op=MPI.SUM)
where = comm.gather(f"rank {rank} on {socket.gethostname()} (task {os.environ['AZ_BATCHAI_TASK_INDEX']})", root=0)
if rank == 0:
    print("\n".join(where))
    print(f"allreduce over {size} ranks: {total.tolist()}", flush=True)
    Run.get_context().log("allreduce_sum", float(total[0]))
