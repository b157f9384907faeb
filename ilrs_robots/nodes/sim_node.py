"""sim: the embedded lunar simulator as a ROS node.

Runs MuJoCo physics of the world's rover, serves its RoboClaw bus (`<run_dir>/<robot>/roboclaw`),
its serial JPEG camera (`<run_dir>/<robot>/vc0706`, the mast camera's view) and its GMC-320
Geiger counter (`<run_dir>/<robot>/gmc`, counting in the world's radiation field where the rover
is) on pseudo-terminals for the unchanged drivers, with `printer: true` the gantry printer at the
construction site (`<run_dir>/<printer_robot>/printer`, its deposit joining the terrain, its
site height image on `/<printer_robot>/site_camera/height`), and publishes /clock, the IMU,
the cameras (stereo pair and mast camera, with camera_info and JPEG; with `depth_rate` a
depth image of the left nav camera on `depth/image_raw`, 32FC1 metres along the optical axis
as REP 118 has it, and `depth/camera_info`), static TF of the
sensors, and the ground truth (`<robot>/sim/ground_truth`, for tests and evaluation only).

Serves `~/drop_rock` (`/sim/drop_rock`, ilrs_interfaces/srv/DropRock): a rock of a radius
and height dropped at (x, y) of the world frame at run time, as a dome of the terrain height
field that the wheels touch and the cameras see; refused, with the reason in
`status_message`, off the terrain, on the rover or for a non-finite value.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")  # before anything imports mujoco
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, Imu  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from ilrs_interfaces.srv import DropRock  # noqa: E402
from ilrs_robots.core.calibration import CameraCalibration  # noqa: E402
from ilrs_robots.core.drive_config import (  # noqa: E402
    DEFAULT_CHANNELS,
    DEFAULT_WHEELS,
    WheelConfigError,
    parse_wheels,
)
from ilrs_robots.core.geometry import to_xyzw, yaw_to_quaternion  # noqa: E402
from ilrs_robots.drivers.print_files import load_printer  # noqa: E402
from ilrs_robots.nodes import messages  # noqa: E402
from ilrs_robots.nodes.params import ParameterError, declare, run_node  # noqa: E402
from ilrs_robots.nodes.qos import LATCHED  # noqa: E402
from ilrs_robots.resources import config_path  # noqa: E402
from ilrs_robots.sim.devices.gmc_emulator import GmcCounter  # noqa: E402
from ilrs_robots.sim.devices.vc0706_emulator import Vc0706Camera  # noqa: E402
from ilrs_robots.sim.model import MAST_CAMERA, STEREO_CAMERAS, RoverSpec  # noqa: E402
from ilrs_robots.sim.physics import RoverPhysics  # noqa: E402
from ilrs_robots.sim.rock_drop import RockDropError  # noqa: E402
from ilrs_robots.sim.simulator import Every, Simulator, optical_offsets  # noqa: E402
from ilrs_robots.sim.site_printer import SitePrinter  # noqa: E402
from ilrs_robots.sim.world import WorldError, load_world  # noqa: E402

MAX_CATCH_UP = 0.05
"""s of wall time the loop may fall behind `rate` and still catch up by running without
pauses. Further behind, sim time slips instead: a burst of catch-up would advance /clock by
seconds within a fraction of a second of wall time, and every node under use_sim_time would
see its inputs (poses, scans, images) go stale at once while the wall-clock watchdogs of the
drivers let the rover drive blind through that stretch of sim time."""
EDIT_TIMEOUT = 10.0
"""s of wall time a service waits for the simulation loop to apply its terrain edit."""


class SimNode(Node):
    """The simulator; see the module docstring."""

    def __init__(self) -> None:
        super().__init__("sim")
        d = self
        world = declare(d, "world", "south_pole", "World name (config/worlds) or YAML path",
                        read_only=True)
        rover_file = declare(d, "rover_params", str(config_path("params/rover_base.yaml")),
                             "Base driver parameter file the rover's geometry is read from",
                             read_only=True)
        run_dir = declare(d, "run_dir", "/tmp/ilrs", "Where device ports are published", bool,
                          "a directory", read_only=True)
        self.robot = declare(d, "robot", "rover1", "The rover's namespace", bool, "non-empty",
                             read_only=True)
        self.rate = declare(d, "rate", 1.0, "Speed: 1 real time, 2 twice as fast, 0 flat out",
                            range=(0.0, 100.0))
        self.dt = declare(d, "step", 0.01, "Sim time per loop (s)", range=(0.001, 0.1))
        clock_rate = declare(d, "clock_rate", 100.0, "/clock rate (Hz of sim time), at most "
                             "once per step: every use_sim_time node wakes for each message",
                             range=(1.0, 1000.0))
        imu_rate = declare(d, "imu_rate", 100.0, "IMU rate (Hz of sim time), 0 off",
                           range=(0.0, 1000.0))
        stereo_rate = declare(d, "stereo_rate", 5.0, "Stereo pair rate (Hz), 0 off",
                              range=(0.0, 60.0))
        mast_rate = declare(d, "mast_rate", 2.0, "Mast camera rate (Hz), 0 off",
                            range=(0.0, 60.0))
        depth_rate = declare(d, "depth_rate", 0.0, "Depth image of the left nav camera "
                             "(depth/image_raw, 32FC1 metres) rate (Hz), 0 off; drawn with "
                             "the left image when both are due", range=(0.0, 60.0))
        self.size = (declare(d, "camera_width", 640, "Image width (pixels)", range=(16, 4096),
                             read_only=True),
                     declare(d, "camera_height", 480, "Image height (pixels)",
                             range=(16, 4096), read_only=True))
        self.jpeg_quality = declare(d, "jpeg_quality", 80, "JPEG quality of compressed images",
                                    range=(1, 100))
        printer = declare(d, "printer", False, "Serve the gantry printer at construction_site "
                          "on <run_dir>/<printer_robot>/printer; its deposit joins the terrain",
                          read_only=True)
        printer_robot = declare(d, "printer_robot", "builder1", "Namespace of the construction "
                                "robot (its port and site camera)", bool, "non-empty",
                                read_only=True)
        printer_speedup = declare(d, "printer_speedup", 1.0, "The printer's moves run this many "
                                  "times faster than their feed rates (wall clock)",
                                  range=(0.01, 100000.0), read_only=True)
        geiger = declare(d, "radiation_sensor", True, "Serve the GMC-320 Geiger counter on "
                         "<run_dir>/<robot>/gmc, counting in the world's radiation field",
                         read_only=True)
        self.sensor_height = declare(d, "radiation_sensor_height", 0.5, "Height of the counter "
                                     "above the rover's base (m)", range=(0.0, 5.0),
                                     read_only=True)
        site_rate = declare(d, "site_camera_rate", 1.0, "Site height image rate (Hz of sim "
                            "time) and terrain updates (twice that), 0 off", range=(0.0, 30.0))
        try:
            params = yaml.safe_load(Path(rover_file).read_text())
            base = next(iter(params.values()))["ros__parameters"]
            spec = RoverSpec.from_params(params)
            wheels = parse_wheels(base.get("wheels", DEFAULT_WHEELS),
                                  base.get("wheel_channels", DEFAULT_CHANNELS),
                                  base.get("wheel_directions", [1] * 6),
                                  base.get("addresses", [128, 129, 130]))
            physics = RoverPhysics(load_world(world), spec)
        except (OSError, yaml.YAMLError, KeyError, StopIteration, TypeError,
                WheelConfigError) as exc:
            raise ParameterError("rover_params", f"cannot be read: {exc}") from exc
        except WorldError as exc:
            raise ParameterError("world", f"is not usable: {exc}") from exc
        link = Path(run_dir) / self.robot / "roboclaw"
        self.sim = Simulator(physics, wheels, float(base.get("counts_per_rev", 8192.0)), link,
                             base.get("addresses", [128, 129, 130]), base.get("baud", 115200))
        # the serial JPEG camera serves the mast camera's latest render
        self._mast_bgr = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        self.vc0706 = Vc0706Camera(link.parent / "vc0706", frame_source=lambda: self._mast_bgr)
        self._sensor_xyz = (0.0, 0.0, 0.0)
        self._note_sensor_position()
        self.gmc: GmcCounter | None = None
        if geiger:
            # one heartbeat per second of sim time at the configured rate
            self.gmc = GmcCounter.from_world(
                link.parent / "gmc", physics.world, lambda: self._sensor_xyz,
                physics.heightmap, seed=physics.world.seed,
                interval=1.0 / self.rate if self.rate > 0 else 1.0)
        ns = f"/{self.robot}"
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.imu_pub = self.create_publisher(Imu, f"{ns}/imu/data", 50)
        self.truth_pub = self.create_publisher(Odometry, f"{ns}/sim/ground_truth", 10)
        self.cams = []
        for cam, topic, rate in ((STEREO_CAMERAS[0], "stereo/left", stereo_rate),
                                 (STEREO_CAMERAS[1], "stereo/right", stereo_rate),
                                 (MAST_CAMERA, "camera", mast_rate)):
            self.cams.append((cam, f"{cam}_optical_frame", Every(rate),
                              self.create_publisher(Image, f"{ns}/{topic}/image_raw", 2),
                              self.create_publisher(CameraInfo, f"{ns}/{topic}/camera_info", 2),
                              self.create_publisher(CompressedImage,
                                                    f"{ns}/{topic}/image_raw/compressed", 2)))
        self.depth_due = Every(depth_rate)
        self.depth_pub = self.create_publisher(Image, f"{ns}/depth/image_raw", 2)
        self.depth_info_pub = self.create_publisher(CameraInfo, f"{ns}/depth/camera_info", 2)
        self.imu_due, self.truth_due = Every(imu_rate), Every(50.0)
        self.clock_due = Every(clock_rate)
        self.site_printer: SitePrinter | None = None
        self.site_due, self.terrain_due = Every(site_rate), Every(2.0 * site_rate)
        if printer:
            try:
                self.site_printer = SitePrinter(
                    physics, "construction_site", Path(run_dir) / printer_robot / "printer",
                    load_printer(None), printer_speedup)
            except (KeyError, ValueError) as exc:
                raise ParameterError("printer", f"cannot be placed: {exc}") from exc
            self.site_pub = self.create_publisher(Image, f"/{printer_robot}/site_camera/height",
                                                  2)
        self._publish_static_tf()
        # terrain edits are applied by the loop's thread, between steps (MuJoCo is not
        # thread-safe); a service callback waits for its edit's result
        self._edits: queue.SimpleQueue[tuple[Callable[[], object], Future]] = \
            queue.SimpleQueue()
        self.create_service(DropRock, "~/drop_rock", self._on_drop_rock)
        self.sim.start()
        self.vc0706.start()
        if self.gmc is not None:
            self.gmc.start()
        if self.site_printer is not None:
            self.site_printer.start()
        self.get_logger().info(f"world '{physics.world.name}', rover ports under {link.parent}"
                               f", rate {self.rate or 'flat out'}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sim", daemon=True)
        self._thread.start()

    def on_parameters_set(self, changed: dict[str, object]) -> None:
        """Apply accepted live changes: speed, step, clock and sensor rates, JPEG quality."""
        for name, value in changed.items():
            if name == "rate":
                self.rate = float(value)
            elif name == "step":
                self.dt = float(value)
            elif name == "clock_rate":
                self.clock_due.set_rate(float(value))
            elif name == "imu_rate":
                self.imu_due.set_rate(float(value))
            elif name == "stereo_rate":
                for cam in self.cams[:2]:
                    cam[2].set_rate(float(value))
            elif name == "mast_rate":
                self.cams[2][2].set_rate(float(value))
            elif name == "depth_rate":
                self.depth_due.set_rate(float(value))
            elif name == "jpeg_quality":
                self.jpeg_quality = int(value)
            elif name == "site_camera_rate":
                self.site_due.set_rate(float(value))
                self.terrain_due.set_rate(2.0 * float(value))

    def _publish_static_tf(self) -> None:
        pub = self.create_publisher(TFMessage, "/tf_static", LATCHED)
        base = "base_link"
        zero = messages.stamp_of(0.0)
        tfs = [messages.transform(zero, base, "imu_link", self.sim.physics.rover.imu_position,
                                  yaw_to_quaternion(0.0))]
        for cam, (xyz, q) in optical_offsets(self.sim.physics).items():
            tfs.append(messages.transform(zero, base, f"{cam}_optical_frame", xyz, q))
        pub.publish(TFMessage(transforms=tfs))
        self._static_pub = pub

    def _loop(self) -> None:
        wall_next = time.monotonic()
        while not self._stop.is_set():
            self._apply_edits()
            self.sim.step(self.dt)
            t = self.sim.physics.time
            try:
                self._publish(t)
            except Exception:  # noqa: BLE001 - the context ends under us at shutdown
                if not self.context.ok():
                    return
                raise
            if self.rate > 0:
                wall_next += self.dt / self.rate
                delay = wall_next - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -MAX_CATCH_UP:
                    # behind (a render, a busy CPU): let sim time slip rather than run flat
                    # out to catch up, which would make /clock leap ahead of every consumer
                    wall_next = time.monotonic()

    def _apply_edits(self) -> None:
        while True:
            try:
                edit, done = self._edits.get_nowait()
            except queue.Empty:
                return
            if done.set_running_or_notify_cancel():
                try:
                    done.set_result(edit())
                except Exception as exc:  # noqa: BLE001 - the caller reports it
                    done.set_exception(exc)

    def _on_drop_rock(self, request: DropRock.Request, response: DropRock.Response
                      ) -> DropRock.Response:
        x, y, radius, height = request.x, request.y, request.radius, request.height
        phys = self.sim.physics

        def drop() -> tuple[int, float]:
            bump = phys.drop_rock(x, y, radius, height)
            return bump.nodes, float(bump.window(phys.heightmap.heights).max())

        done: Future = Future()
        self._edits.put((drop, done))
        try:
            nodes, top = done.result(timeout=EDIT_TIMEOUT)
        except RockDropError as exc:
            response.success, response.status_message = False, f"refused: {exc}"
        except TimeoutError:
            done.cancel()
            response.success = False
            response.status_message = (f"the simulation loop did not apply the rock within "
                                       f"{EDIT_TIMEOUT:g} s")
        except Exception as exc:  # noqa: BLE001 - a failed edit is an answer, not a crash
            response.success = False
            response.status_message = f"the simulator could not drop it: {exc!r}"
        else:
            response.success, response.top = True, top
            response.status_message = (f"rock of radius {radius:g} m, {height:g} m high, "
                                       f"dropped at ({x:.2f}, {y:.2f}): {nodes} terrain nodes "
                                       f"raised, top at z = {top:.2f} m")
        if response.success:
            self.get_logger().info(f"drop_rock: {response.status_message}")
        else:
            self.get_logger().warning(f"drop_rock: {response.status_message}")
        return response

    def _publish(self, t: float) -> None:
        stamp = messages.stamp_of(t)
        if self.clock_due.due(t):
            self.clock_pub.publish(Clock(clock=stamp))
        phys = self.sim.physics
        if self.imu_due.due(t):
            accel, gyro = phys.imu()
            msg = Imu()
            msg.header.stamp, msg.header.frame_id = stamp, "imu_link"
            msg.orientation_covariance[0] = -1.0  # no orientation estimate
            a, g = msg.linear_acceleration, msg.angular_velocity
            a.x, a.y, a.z = (float(v) for v in accel)
            g.x, g.y, g.z = (float(v) for v in gyro)
            self.imu_pub.publish(msg)
        if self.truth_due.due(t):
            self.truth_pub.publish(self._truth(stamp))
            self._note_sensor_position()
        sp = self.site_printer
        if sp is not None:
            if self.terrain_due.due(t):
                sp.update_terrain()
            if self.site_due.due(t):
                self.site_pub.publish(messages.image(stamp, "construction_site",
                                                     sp.height_image(sp.printer.bead_width),
                                                     "32FC1"))
        w, h = self.size
        left_rgb = None
        if self.depth_due.due(t):
            cam = STEREO_CAMERAS[0]
            left_rgb, depth = phys.render_rgbd(cam, w, h)
            frame = f"{cam}_optical_frame"
            self.depth_pub.publish(messages.image(stamp, frame, depth, "32FC1"))
            k = phys.camera_intrinsics(cam, w, h)
            self.depth_info_pub.publish(messages.calibration_info(
                stamp, frame, CameraCalibration.pinhole(w, h, k.fx, k.fy, k.cx, k.cy, cam)))
        for cam, frame, every, img_pub, info_pub, jpg_pub in self.cams:
            if not every.due(t):
                continue
            if cam == STEREO_CAMERAS[0] and left_rgb is not None:
                rgb = left_rgb  # the same drawing as the depth image
            else:
                rgb = phys.render(cam, w, h)
            if cam == MAST_CAMERA:
                self._mast_bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            img_pub.publish(messages.image(stamp, frame, rgb, "rgb8"))
            k = phys.camera_intrinsics(cam, w, h)
            cal = CameraCalibration.pinhole(w, h, k.fx, k.fy, k.cx, k.cy, cam)
            if cam == STEREO_CAMERAS[1]:  # right of the pair: P[3] = -fx * baseline
                cal.p[3] = -k.fx * phys.rover.stereo_baseline
            info_pub.publish(messages.calibration_info(stamp, frame, cal))
            if jpg_pub.get_subscription_count():
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                        [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if ok:
                    jpg_pub.publish(messages.compressed_image(stamp, frame, jpeg.tobytes()))

    def _note_sensor_position(self) -> None:
        """Where the Geiger counter is (world x, y, z), for its own thread to read."""
        pos = self.sim.physics.ground_truth()[0]
        self._sensor_xyz = (float(pos[0]), float(pos[1]), float(pos[2]) + self.sensor_height)

    def _truth(self, stamp: Time) -> Odometry:
        pos, wxyz, lin, ang = self.sim.physics.ground_truth(local_velocity=True)
        msg = Odometry()
        msg.header.stamp, msg.header.frame_id = stamp, "map"
        msg.child_frame_id = "base_link"
        p, o = msg.pose.pose.position, msg.pose.pose.orientation
        p.x, p.y, p.z = (float(v) for v in pos)
        o.x, o.y, o.z, o.w = to_xyzw(wxyz)
        tl, ta = msg.twist.twist.linear, msg.twist.twist.angular
        tl.x, tl.y, tl.z = (float(v) for v in lin)
        ta.x, ta.y, ta.z = (float(v) for v in ang)
        return msg

    def close(self) -> None:
        """Stop the loop and the devices."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.vc0706.stop()
        if self.gmc is not None:
            self.gmc.stop()
        if self.site_printer is not None:
            self.site_printer.stop()
        self.sim.stop()


def main(args: list[str] | None = None) -> None:
    """Console script `sim`."""
    raise SystemExit(run_node(SimNode, args))


if __name__ == "__main__":
    main()
