"""The Gazebo export (sim/gazebo_export.py): terrain heights, world physics and light, site
objects, the rover model against the embedded simulator, and the bridge against the topic
contract the nodes use."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ilrs_robots.resources import config_path
from ilrs_robots.sim import gazebo_export as gx
from ilrs_robots.sim.model import RoverSpec, _object_xml
from ilrs_robots.sim.world import build_heightmap, load_world, world_from_dict

NODES_DIR = Path(__file__).resolve().parents[2] / "ilrs_robots" / "nodes"

SMALL_CRATERS = {
    "name": "small_craters", "seed": 3, "gravity": 1.62,
    "terrain": {"type": "craters", "size": [60.0, 40.0], "resolution": 0.5,
                "craters": {"count": 40, "min_diameter": 2.0, "max_diameter": 15.0},
                "rocks": {"count": 12}},
    "sun": {"elevation_deg": 4.0, "azimuth_deg": 200.0, "intensity": 0.9},
    "sites": {"depot": {"position": [0.0, 0.0], "pad_radius": 5.0, "objects": [
        {"name": "crate", "type": "box", "position": [3.0, 1.0, 0.0], "size": [0.5, 0.4, 0.3]},
        {"name": "tank", "type": "cylinder", "position": [-3.0, 0.0], "size": [0.6, 2.0]},
        {"name": "ball", "type": "sphere", "position": [0.0, 3.0], "size": [0.4]},
        {"name": "dial", "type": "gauge", "position": [0.0, -3.0], "size": [0.3, 1.2],
         "yaw_deg": 90.0},
        {"name": "ring", "type": "berm", "radius": 8.0, "size": [1.0, 1.5], "segments": 12,
         "gap_deg": 60.0}]}},
    "rover_start": {"site": "depot", "position": [1.0, 0.0], "yaw_deg": 30.0},
}
"""ROS type names as ros_gz_bridge's README pairs them with Gazebo Transport types."""
ROS_GZ_PAIRS = {
    ("rosgraph_msgs/msg/Clock", "gz.msgs.Clock"),
    ("geometry_msgs/msg/Twist", "gz.msgs.Twist"),
    ("nav_msgs/msg/Odometry", "gz.msgs.Odometry"),
    ("tf2_msgs/msg/TFMessage", "gz.msgs.Pose_V"),
    ("sensor_msgs/msg/JointState", "gz.msgs.Model"),
    ("sensor_msgs/msg/Imu", "gz.msgs.IMU"),
    ("sensor_msgs/msg/Image", "gz.msgs.Image"),
    ("sensor_msgs/msg/CameraInfo", "gz.msgs.CameraInfo"),
}
MESSAGE_PACKAGES = {"Twist": "geometry_msgs", "TwistStamped": "geometry_msgs",
                    "Odometry": "nav_msgs", "Imu": "sensor_msgs", "Image": "sensor_msgs",
                    "CameraInfo": "sensor_msgs", "JointState": "sensor_msgs",
                    "TFMessage": "tf2_msgs", "Clock": "rosgraph_msgs"}


@pytest.fixture(scope="module")
def small_world():
    return world_from_dict(SMALL_CRATERS, "small_craters.yaml")


@pytest.fixture(scope="module")
def export(small_world):
    return gx.build_export(small_world, ("rover1", "rover2"))


def _xml(export: gx.GazeboExport, name: str) -> ET.Element:
    return ET.fromstring(export.files[name])


def test_heightmap_side_is_two_to_the_n_plus_one():
    assert gx.heightmap_side(801) == 1025
    assert gx.heightmap_side(129) == 129
    assert gx.heightmap_side(130) == 257
    with pytest.raises(ValueError):
        gx.heightmap_image(build_heightmap(load_world("test_flat")), side=100)


def test_heightmap_png_gives_back_the_terrain(small_world, export):
    """Decoded as Gazebo does (pixel / 65535 * size.z + pos.z, row 0 north), the PNG
    reproduces the world's heights at every image node to within 16-bit quantisation."""
    hm = build_heightmap(small_world)
    pixels = cv2.imdecode(np.frombuffer(export.files[gx.HEIGHTMAP_FILE], np.uint8),
                          cv2.IMREAD_UNCHANGED)
    assert pixels.dtype == np.uint16 and pixels.ndim == 2
    n = pixels.shape[0]
    assert pixels.shape == (n, n) and ((n - 1) & (n - 2)) == 0
    assert pixels.min() == 0 and pixels.max() == 65535
    geom = _xml(export, gx.WORLD_FILE).find(".//model[@name='terrain']//collision/geometry")
    size = [float(v) for v in geom.findtext("heightmap/size").split()]
    pos = [float(v) for v in geom.findtext("heightmap/pos").split()]
    assert geom.findtext("heightmap/uri") == gx.HEIGHTMAP_FILE
    assert size[0] == size[1] == pytest.approx(max(hm.size))
    assert pos[:2] == pytest.approx(list(hm.center))
    t = np.linspace(-size[0] / 2, size[0] / 2, n)
    gxs, gys = np.meshgrid(pos[0] + t, pos[1] - t)  # image row 0 is the northern edge
    decoded = pos[2] + pixels / 65535.0 * size[2]
    truth = hm.height_at(gxs, gys)
    assert np.abs(decoded - truth).max() <= size[2] / 65535.0 + 1e-9
    assert size[2] == pytest.approx(float(hm.heights.max() - hm.heights.min()), rel=0.05)


def test_sloped_terrain_heights_between_nodes():
    world = load_world("test_slope")
    hm = build_heightmap(world)
    img = gx.heightmap_image(hm)
    back = img.as_heightmap()
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = hm.bounds
    xs = rng.uniform(x0 + 1, x1 - 1, 200)
    ys = rng.uniform(y0 + 1, y1 - 1, 200)
    assert np.abs(back.height_at(xs, ys) - hm.height_at(xs, ys)).max() < 0.02


def test_world_gravity_sun_and_systems(small_world, export):
    world = _xml(export, gx.WORLD_FILE)
    assert world.get("version") == "1.9"
    w = world.find("world")
    assert [float(v) for v in w.findtext("gravity").split()] == pytest.approx([0, 0, -1.62])
    sun = w.find("light[@name='sun']")
    assert sun.get("type") == "directional" and sun.findtext("cast_shadows") == "true"
    direction = np.array([float(v) for v in sun.findtext("direction").split()])
    assert direction == pytest.approx(-small_world.sun.direction(), abs=1e-5)
    el = math.degrees(math.asin(-direction[2] / np.linalg.norm(direction)))
    assert el == pytest.approx(4.0, abs=1e-3)
    plugins = {p.get("name"): p for p in w.findall("plugin")}
    for system in ("Physics", "Sensors", "Imu", "SceneBroadcaster", "UserCommands"):
        assert f"gz::sim::systems::{system}" in plugins
    assert plugins["gz::sim::systems::Sensors"].findtext("render_engine") == "ogre2"
    assert w.find("physics").get("type") == "dart"


def test_site_objects_and_rocks_are_placed(small_world, export):
    w = _xml(export, gx.WORLD_FILE).find("world")
    hm = build_heightmap(small_world)
    site = small_world.site("depot")
    models = {m.get("name"): m for m in w.findall("model")}
    for obj in site.objects:
        assert f"obj_{obj.name}" in models
    crate = models["obj_crate"]
    x, y, z = (float(v) for v in crate.findtext("pose").split()[:3])
    assert (x, y) == pytest.approx((3.0, 1.0))
    assert z == pytest.approx(site.surface_z(hm) + 0.3, abs=1e-4)  # centre: half-height up
    assert crate.find(".//box/size").text.split() == ["1", "0.8", "0.6"]
    ring = models["obj_ring"].findall("link/collision")
    berm = next(o for o in site.objects if o.name == "ring")
    mujoco_segments = _object_xml(berm, site.to_world(berm.position, hm))
    assert 3 < len(ring) == len(mujoco_segments) < 12  # the embedded simulator's segments
    rocks = models["rocks"].findall("link/collision")
    assert len(rocks) == 12 and all(r.find(".//ellipsoid/radii") is not None for r in rocks)


def test_rover_model_matches_base_driver_and_simulator(export):
    base = yaml.safe_load(config_path("params", "rover_base.yaml").read_text())
    params = next(iter(base.values()))["ros__parameters"]
    rover = RoverSpec.from_params(base)
    model = _xml(export, "rover1.sdf").find("model")
    joints = model.findall("joint")
    assert [j.get("name") for j in joints] == params["wheels"]
    assert all(j.get("type") == "revolute" and j.findtext("axis/xyz") == "0 1 0"
               for j in joints)
    for j, (wx, wy) in zip(joints, rover.wheel_offsets(), strict=True):
        link = model.find(f"link[@name='{j.findtext('child')}']")
        assert [float(v) for v in link.findtext("pose").split()[:3]] == pytest.approx(
            [wx, wy, 0.0])
    dd = model.find("plugin[@name='gz::sim::systems::DiffDrive']")
    assert [e.text for e in dd.findall("left_joint")] == params["wheels"][0::2]
    assert [e.text for e in dd.findall("right_joint")] == params["wheels"][1::2]
    assert float(dd.findtext("wheel_separation")) == params["effective_track_width"]
    assert float(dd.findtext("wheel_radius")) == params["wheel_radius"]
    assert (dd.findtext("frame_id"), dd.findtext("child_frame_id")) == ("odom", "base_link")
    jsp = model.find("plugin[@name='gz::sim::systems::JointStatePublisher']")
    assert [e.text for e in jsp.findall("joint_name")] == params["wheels"]
    sensors = {s.get("name"): s for s in model.findall("link[@name='base_link']/sensor")}
    assert set(sensors) == {"imu", "nav_left", "nav_right", "mast"}
    cam = sensors["nav_left"]
    w, h = int(cam.findtext("camera/image/width")), int(cam.findtext("camera/image/height"))
    hfov = float(cam.findtext("camera/horizontal_fov"))
    fovy = 2 * math.degrees(math.atan(math.tan(hfov / 2) * h / w))
    assert fovy == pytest.approx(rover.nav_camera_fovy_deg, abs=1e-3)
    assert cam.findtext("gz_frame_id") == "nav_left_optical_frame"
    assert sensors["imu"].findtext("gz_frame_id") == "imu_link"


def test_sensor_frames_equal_the_embedded_simulators():
    """The static transforms Gazebo mode publishes are the embedded simulator's /tf_static."""
    from ilrs_robots.sim.physics import RoverPhysics
    from ilrs_robots.sim.simulator import optical_offsets

    base = yaml.safe_load(config_path("params", "rover_base.yaml").read_text())
    rover = RoverSpec.from_params(base)
    physics = RoverPhysics(load_world("test_flat"), rover)
    sim = {k: v for k, v in optical_offsets(physics).items() if k != "chase"}  # viewer only
    ours = gx.sensor_frames(rover)
    assert set(ours) == {f"{c}_optical_frame" for c in sim} | {"imu_link"}
    for cam, (xyz, q) in sim.items():
        oxyz, oq = ours[f"{cam}_optical_frame"]
        assert oxyz == pytest.approx(list(xyz), abs=2e-3)
        # same rotation: |<q1, q2>| = 1 (q and -q are one rotation)
        assert abs(float(np.dot(oq, q))) == pytest.approx(1.0, abs=1e-3)


def _node_topics() -> dict[str, set[str]]:
    """Relative topic -> message type names the nodes publish or subscribe (source scan)."""
    pattern = re.compile(r"create_(?:publisher|subscription)\(\s*(\w+)[^,]*,\s*f?\"([^\"]+)\"")
    topics: dict[str, set[str]] = {}
    for path in NODES_DIR.glob("*.py"):
        for typ, topic in pattern.findall(path.read_text()):
            topic = re.sub(r"^\{ns\}/", "", topic)
            if "{" in topic:
                for side in ("left", "right"):
                    for t in (topic.replace("{side}", side),):
                        topics.setdefault(t, set()).add(typ)
                if "{topic}" in topic:
                    for t in ("stereo/left", "stereo/right", "camera"):
                        topics.setdefault(topic.replace("{topic}", t), set()).add(typ)
                continue
            topics.setdefault(topic, set()).add(typ)
    return topics


CONTRACT = {
    "gz/cmd_vel": ("geometry_msgs/msg/Twist", "ROS_TO_GZ"),  # gazebo_base's output
    "odom": ("nav_msgs/msg/Odometry", "GZ_TO_ROS"),
    "joint_states": ("sensor_msgs/msg/JointState", "GZ_TO_ROS"),
    "imu/data": ("sensor_msgs/msg/Imu", "GZ_TO_ROS"),
    "stereo/left/image_raw": ("sensor_msgs/msg/Image", "GZ_TO_ROS"),
    "stereo/left/camera_info": ("sensor_msgs/msg/CameraInfo", "GZ_TO_ROS"),
    "stereo/right/image_raw": ("sensor_msgs/msg/Image", "GZ_TO_ROS"),
    "stereo/right/camera_info": ("sensor_msgs/msg/CameraInfo", "GZ_TO_ROS"),
    "camera/image_raw": ("sensor_msgs/msg/Image", "GZ_TO_ROS"),
    "camera/camera_info": ("sensor_msgs/msg/CameraInfo", "GZ_TO_ROS"),
}


def test_bridge_covers_the_topic_contract(export):
    entries = yaml.safe_load(export.files[gx.BRIDGE_FILE])
    keys = {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
    assert all(set(e) == keys for e in entries)
    by_ros = {}
    for e in entries:
        assert (e["ros_type_name"], e["gz_type_name"]) in ROS_GZ_PAIRS
        by_ros.setdefault(e["ros_topic_name"], []).append(e)
    clock = by_ros["/clock"]
    assert len(clock) == 1 and clock[0]["direction"] == "GZ_TO_ROS"
    tf = by_ros["/tf"]
    assert {e["gz_topic_name"] for e in tf} == {"/rover1/tf", "/rover2/tf"}
    assert all(e["direction"] == "GZ_TO_ROS" for e in tf)
    for robot in ("rover1", "rover2"):
        for topic, (typ, direction) in CONTRACT.items():
            (e,) = by_ros[f"/{robot}/{topic}"]
            assert (e["ros_type_name"], e["direction"]) == (typ, direction), topic
    gz_topics = [e["gz_topic_name"] for e in entries]
    assert len(gz_topics) == len(set(gz_topics)), "two bridges on one Gazebo topic"
    # cmd_vel itself is not bridged: gazebo_base stands between it and the DiffDrive
    assert "/rover1/cmd_vel" not in by_ros and "/rover2/cmd_vel" not in by_ros
    (e,) = by_ros["/rover1/gz/cmd_vel"]
    assert e["gz_topic_name"] == "/rover1/cmd_vel"  # the DiffDrive's <topic>


def test_gazebo_base_gets_the_base_drivers_limits(export):
    """gazebo_base.yaml: rover_base.yaml's timeout and limits; the DiffDrive caps at stop_accel
    (gazebo_base ramps moves at max_accel, and a stop must not be slowed)."""
    from ilrs_robots.nodes.gazebo_base import GAZEBO_CMD_VEL

    assert GAZEBO_CMD_VEL == gx.GAZEBO_CMD_VEL
    base = next(iter(yaml.safe_load(config_path("params", "rover_base.yaml").read_text())
                     .values()))["ros__parameters"]
    ((key, section),) = yaml.safe_load(export.files[gx.BASE_PARAMS_FILE]).items()
    assert key == "/**/gazebo_base"
    assert section["ros__parameters"] == {k: base[k] for k in gx.BASE_PARAMETERS}
    drive = next(p for p in _xml(export, "rover1.sdf").find("model").findall("plugin")
                 if p.get("name") == "gz::sim::systems::DiffDrive")
    assert float(drive.findtext("max_linear_acceleration")) == base["stop_accel"]
    assert float(drive.findtext("min_linear_acceleration")) == -base["stop_accel"]


def test_bridge_types_are_the_ones_the_nodes_use(export):
    """Every bridged topic a node of ours publishes or subscribes has the node's type."""
    used = _node_topics()
    assert {"cmd_vel", "odom", "imu/data", "stereo/left/image_raw"} <= set(used)
    for e in yaml.safe_load(export.files[gx.BRIDGE_FILE]):
        rel = re.sub(r"^/rover\d/", "", e["ros_topic_name"])
        pkg, _, name = e["ros_type_name"].split("/")
        if rel in used:
            assert name in used[rel], f"{rel}: bridged as {name}, nodes use {used[rel]}"
            assert MESSAGE_PACKAGES[name] == pkg


def test_bridge_gazebo_topics_exist_in_the_model(export):
    """Each Gazebo topic of a robot is one its model publishes or subscribes (a camera's
    info is beside its image: <image topic's parent>/camera_info, as gz-sensors does)."""
    for robot in ("rover1", "rover2"):
        model = _xml(export, f"{robot}.sdf").find("model")
        gz = {s.findtext("topic") for s in model.iter("sensor")}
        gz |= {t.rsplit("/", 1)[0] + "/camera_info" for t in list(gz) if t.endswith("image_raw")}
        for p in model.findall("plugin"):
            gz |= {p.findtext(k) for k in ("topic", "odom_topic", "tf_topic")
                   if p.find(k) is not None}
        bridged = {e["gz_topic_name"] for e in yaml.safe_load(export.files[gx.BRIDGE_FILE])
                   if e["gz_topic_name"].startswith(f"/{robot}/")}
        assert bridged and bridged <= gz, bridged - gz


def test_robots_get_their_own_models_and_spawn_poses(small_world, export):
    meta = yaml.safe_load(export.files[gx.ROBOTS_FILE])
    assert meta["world"] == "small_craters"
    assert list(meta["robots"]) == ["rover1", "rover2"]
    p1, p2 = (np.array(meta["robots"][r]["pose"]) for r in ("rover1", "rover2"))
    assert p1[:2] == pytest.approx([1.0, 0.0]) and p1[5] == pytest.approx(math.radians(30))
    assert np.linalg.norm(p2[:2] - p1[:2]) == pytest.approx(4.0, abs=1e-3)
    topics2 = {s.findtext("topic") for s in _xml(export, "rover2.sdf").iter("sensor")}
    assert all(t.startswith("/rover2/") for t in topics2)
    with pytest.raises(ValueError):
        gx.build_export(small_world, ("rover1", "rover1"))
