"""Pictures of the network, the placement and where the latency goes.

- `geo`: satellite longitude/latitude at a time step, and the ring path between gateways.
- `constellation_map`: every satellite coloured by the layer whose ring subnet holds it, the
  live and failed ISLs, the gateways and the ring path; a GIF over time steps.
- `subnet_map`: one layer's subnet in its neighbourhood: candidates shaded by expected stage
  cost, the gateway and the next one, experts sized by activation probability; several
  placements side by side with moved experts marked. The envs' `rgb_array` uses it too.
- `breakdown`: propagation / compute / outage per method, and per-token latency CDFs.
- `canvas`: figures through matplotlib's object API (`Figure` + `FigureCanvasAgg`), PNG and
  GIF files written atomically. No module here calls `matplotlib.use`, and nothing imports
  matplotlib before a picture is asked for (`import xnet_gym` never does).
"""
