"""The catalog: where data lives and where it may be processed (``gravityml.yaml``).

Three sections, validated like a job spec (unknown keys and bad values are errors with a path):

- ``sites``: on-prem data centres and cloud regions, their jurisdiction, certifications, hardware
  offers with prices, egress price, bandwidth to other sites, storage price, their object store and
  artefact store, and what runs their jobs: ``executor: local`` (this machine is at that site; one
  site at most), the address of the site's Ray cluster (``http://HOST:8265`` job server, or
  ``ray://HOST:10001``), ``launcher: skypilot`` (a cluster launched per job), or nothing (the site
  is planned and priced, never run on).
- ``datasets``: a name for a URI, its home site, its size and its tags (``financial``, ``pii``).
- ``policies``: which constraints data with some tags carries (site kinds, jurisdictions,
  certifications, whether it may be copied off its home site).

and ``budgets``: a cap in USD per experiment; ``tracking_uri``: the MLflow server every site reports
to. Nothing in a catalog is a secret: credentials are named by environment variable.

The file is looked up, first found wins: an explicit path; ``$GRAVITYML_CATALOG``;
``gravityml.yaml`` beside the job file; in the current folder; in the workspace
(``$GRAVITYML_HOME``). With no catalog there is one site, ``local``: this machine; a catalog has
it too (first, free, jurisdiction unknown) unless it says ``include_local: false`` or one of its
sites says ``executor: local`` (then that site is this machine).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from gravityml.errors import CatalogError
from gravityml.spec import StrictModel, did_you_mean, read_yaml, spec_error_from

CATALOG_FILE = "gravityml.yaml"
CATALOG_ENV = "GRAVITYML_CATALOG"
LOCAL_SITE = "local"
HOURS_PER_YEAR = 8760.0
HOURS_PER_MONTH = HOURS_PER_YEAR / 12

#: Members of the blocs a policy may name instead of listing countries (ISO 3166-1 alpha-2).
#: EU: https://european-union.europa.eu/principles-countries-history/eu-countries_en ; the EEA adds
#: Iceland, Liechtenstein and Norway.
_EU = ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"]
BLOCS: dict[str, frozenset[str]] = {"EU": frozenset(_EU), "EEA": frozenset(_EU + ["IS", "LI", "NO"])}

SiteKind = Literal["on_prem", "cloud"]
#: Certification names, compared case-insensitively (``PCI-DSS`` holds ``pci-dss``).
Certifications = Annotated[list[str], AfterValidator(lambda names: [n.lower() for n in names])]
#: What ``executor: local`` means: this machine is at that site.
LOCAL_EXECUTOR = "local"
#: Seconds to reach a site's cluster before the job is refused (``connect_timeout_s`` per site).
DEFAULT_CONNECT_TIMEOUT_S = 30.0
_EXECUTOR_SCHEMES = ("http://", "https://", "ray://")
_SPARK_MASTER = re.compile(r"spark://[^/\s:]+(:\d+)?(,[^/\s:]+(:\d+)?)*|local(\[(\d+|\*)(,\d+)?\])?|sc://[^\s]+")


class CloudPrice(StrictModel):
    """Metered prices of a cloud instance, per node."""

    on_demand_hourly_usd: float = Field(..., gt=0.0)
    spot_hourly_usd: float | None = Field(None, gt=0.0, description="Interruptible price, if offered.")


class OwnedCost(StrictModel):
    """What owning a node costs; an amortised hourly cost is derived from it."""

    purchase_usd: float = Field(..., ge=0.0, description="Capital cost of one node.")
    lifetime_years: float = Field(4.0, gt=0.0, le=15.0)
    utilisation: float = Field(0.6, gt=0.0, le=1.0, description="Fraction of the year the node does useful work.")
    power_kw: float = Field(..., ge=0.0, description="Draw of one node under load.")
    usd_per_kwh: float = Field(0.15, ge=0.0)
    pue: float = Field(1.4, ge=1.0, le=3.0, description="Power usage effectiveness of the data centre.")
    operations_usd_per_year: float = Field(0.0, ge=0.0, description="Staff, support, space, per node.")

    @property
    def capital_usd_per_year(self) -> float:
        return self.purchase_usd / self.lifetime_years + self.operations_usd_per_year

    @property
    def power_hourly_usd(self) -> float:
        return self.power_kw * self.pue * self.usd_per_kwh

    @property
    def hourly_usd(self) -> float:
        """Capital and operations spread over the hours actually used, plus power while running."""
        return self.capital_usd_per_year / (HOURS_PER_YEAR * self.utilisation) + self.power_hourly_usd


class Offer(StrictModel):
    """One kind of node a site offers: its accelerators, how many, how soon, at what price."""

    name: str = Field(..., min_length=1)
    accelerator: str = Field(..., description="A row of the hardware table (`gravityml plan --hardware`).")
    per_node: int = Field(1, ge=1, le=1024, description="Accelerators (or CPU cores for 'cpu') per node.")
    nodes: int = Field(1, ge=1, description="Nodes in total.")
    nodes_available: int | None = Field(None, ge=0, description="Nodes free now (default: all).")
    queue_wait_hours: float = Field(0.0, ge=0.0, description="Expected wait when too few nodes are free.")
    provisioning_hours: float = Field(0.0, ge=0.0, description="Lead time before a node is ready.")
    memory_gb: float | None = Field(None, gt=0.0, description="Memory a job asks of the site's cluster.")
    cloud: CloudPrice | None = None
    owned: OwnedCost | None = None

    @property
    def free_nodes(self) -> int:
        return self.nodes if self.nodes_available is None else min(self.nodes_available, self.nodes)

    @property
    def hourly_usd(self) -> float:
        """On-demand price (cloud) or amortised cost (owned) of one node-hour."""
        if self.cloud is not None:
            return self.cloud.on_demand_hourly_usd
        assert self.owned is not None  # the site validator guarantees one of them
        return self.owned.hourly_usd


class SiteStorage(StrictModel):
    """A site's S3-compatible object store: its endpoint, and the environment variables of its keys."""

    endpoint_url: str | None = Field(None, description="S3 endpoint (default: the provider's own).")
    region: str | None = None
    access_key_env: str | None = Field(None, description="Name of the variable that holds the access key id.")
    secret_key_env: str | None = Field(None, description="Name of the variable that holds the secret key.")

    def env(self, source: Mapping[str, str] | None = None) -> dict[str, str]:
        """The AWS_* variables a job on the site reads the store with (keys taken from ``source``)."""
        source = os.environ if source is None else source
        out: dict[str, str] = {}
        if self.endpoint_url:
            out["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.region:
            out["AWS_DEFAULT_REGION"] = self.region
        for name, target in ((self.access_key_env, "AWS_ACCESS_KEY_ID"), (self.secret_key_env, "AWS_SECRET_ACCESS_KEY")):
            if name and name in source:
                out[target] = source[name]
        return out


#: The offer a Spark site's ``executors:`` becomes (one row of the planner's table).
SPARK_OFFER = "spark-executors"


class SparkExecutors(StrictModel):
    """What a Spark site's cluster gives a job, and what one executor-hour costs (the site's one offer)."""

    count: int = Field(..., ge=1, description="Executors a job gets (spark.executor.instances, or one per worker).")
    cores: int = Field(..., ge=1, le=1024, description="Cores of one executor (spark.executor.cores).")
    memory_gb: float = Field(..., gt=0.0, description="Memory of one executor (spark.executor.memory).")
    hourly_usd: float | None = Field(None, gt=0.0, description="Price of one executor-hour.")
    core_hourly_usd: float | None = Field(None, gt=0.0, description="Price of one core-hour (cores x this per executor).")
    provisioning_hours: float = Field(0.0, ge=0.0, description="Lead time before the executors are ready.")

    @model_validator(mode="after")
    def _one_price(self) -> SparkExecutors:
        if (self.hourly_usd is None) == (self.core_hourly_usd is None):
            raise ValueError("give one price: hourly_usd (per executor-hour) or core_hourly_usd (per core-hour)")
        return self

    @property
    def executor_hourly_usd(self) -> float:
        return self.hourly_usd if self.hourly_usd is not None else float(self.core_hourly_usd or 0.0) * self.cores

    def offer(self, kind: str) -> Offer:
        """The offer the planner prices: ``count`` nodes of ``cores`` CPU cores at the executor-hour price.

        A cloud site's price is metered (on demand); an on-prem site's is taken as the cluster's whole cost
        spread over every hour of the year (no purchase or power of its own), so buy-vs-rent counts the
        executors as owned all year.
        """
        rate = self.executor_hourly_usd
        price: dict[str, Any] = (
            {"cloud": CloudPrice(on_demand_hourly_usd=rate)} if kind == "cloud" else
            {"owned": OwnedCost(purchase_usd=0.0, power_kw=0.0, usd_per_kwh=0.0, pue=1.0, utilisation=1.0,
                                operations_usd_per_year=rate * HOURS_PER_YEAR)})
        return Offer(name=SPARK_OFFER, accelerator="cpu", per_node=self.cores, nodes=self.count,
                     memory_gb=self.memory_gb, provisioning_hours=self.provisioning_hours, **price)


class SparkCluster(StrictModel):
    """A site's Spark cluster (``executor: {spark: MASTER}`` or ``{spark: {master: MASTER, ...}}``)."""

    master: str = Field(..., description="spark://HOST:7077 (standalone), local[N] (this machine), sc://HOST:15002.")
    conf: dict[str, str] = Field(default_factory=dict, description="Spark properties of the job's session.")
    driver_host: str | None = Field(None, description="Address the executors reach the driver at (spark.driver.host).")
    executors: SparkExecutors | None = Field(
        None, description="The executors a job gets and their price: the site is priced by them (no offers:).")


def _spark_executor(data: Any) -> Any:
    """``executor: {spark: ...}`` becomes ``executor: MASTER`` plus ``spark: {master: MASTER, ...}``."""
    if isinstance(data, Mapping) and isinstance(data.get("executor"), Mapping):
        given = dict(data["executor"])
        spark = given.pop("spark", None)
        if given or spark is None:
            raise CatalogError("executor", "an executor mapping names a Spark cluster: {spark: MASTER}",
                               allowed=["{spark: spark://HOST:7077}", "{spark: {master: ..., conf: {...}}}"],
                               got=data["executor"], fix="write executor: {spark: spark://HOST:7077}")
        cluster = {"master": spark} if isinstance(spark, str) else spark
        master = cluster.get("master") if isinstance(cluster, Mapping) else None
        data = {**data, "executor": master, "spark": cluster}
        executors = cluster.get("executors") if isinstance(cluster, Mapping) else None
        if isinstance(executors, Mapping) and "offers" not in data:
            try:  # priced by its executors: their offer stands in for offers: (a bad one is reported at its path)
                data = {**data, "offers": [SparkExecutors.model_validate(dict(executors)).offer(str(data.get("kind")))]}
            except ValidationError:
                pass
    return data


class Site(StrictModel):
    """An on-prem data centre or a cloud region."""

    kind: SiteKind
    provider: str = ""
    region: str = ""
    jurisdiction: str = Field(..., min_length=2, description="ISO country code (DE, US) where the site is.")
    certifications: Certifications = Field(default_factory=list, description="Compared case-insensitively.")
    executor: str | None = Field(
        None,
        description="'local' (this machine is at the site), the site's Ray job server (http://host:8265) or "
        "Ray Client address (ray://host:10001); none: planned and priced, never run.",
    )
    spark: SparkCluster | None = Field(None, description="Set from executor: {spark: ...}: the site's Spark cluster.")
    launcher: Literal["skypilot"] | None = Field(None, description="Launch a cluster per job (clouds).")
    python: str = Field("python", description="The interpreter that runs the job on the site's cluster.")
    workspace: str | None = Field(None, description="Folder on the site's nodes for checkpoints and the ledger.")
    connect_timeout_s: float = Field(DEFAULT_CONNECT_TIMEOUT_S, gt=0.0, le=600.0)
    auth_token_env: str | None = Field(None, description="Variable holding the cluster's Ray auth token.")
    storage: SiteStorage | None = None
    artifact_location: str | None = Field(None, description="Where models trained here are stored (s3://...).")
    egress_usd_per_gb: float = Field(0.0, ge=0.0, description="Price of moving data out of this site.")
    bandwidth_gbps: dict[str, float] = Field(
        default_factory=dict, description="Bandwidth to other sites by name; key 'default' for the rest."
    )
    storage_usd_per_gb_month: float = Field(0.0, ge=0.0)
    offers: list[Offer] = Field(..., min_length=1)

    @field_validator("jurisdiction")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="before")
    @classmethod
    def _spark_form(cls, data: Any) -> Any:
        return _spark_executor(data)

    @property
    def runnable(self) -> bool:
        """Whether jobs can run here (this machine, a cluster, or a launcher), not only be planned."""
        return self.executor is not None or self.launcher is not None

    def offer(self, name: str) -> Offer:
        for offer in self.offers:
            if offer.name == name:
                return offer
        raise KeyError(name)


class CatalogDataset(StrictModel):
    """A named dataset: where it is, how big, and what it holds (tags select policies)."""

    uri: str
    site: str = Field(..., description="Home site: where the data lives.")
    size_gb: float | None = Field(None, ge=0.0, description="Default: measured for local files.")
    tags: list[str] = Field(default_factory=list)
    pii_columns: dict[str, Literal["hash", "drop"]] = Field(
        default_factory=dict, description="Columns holding personal data: hashed or dropped in prediction logs."
    )


class Policy(StrictModel):
    """Constraints for data carrying any of ``tags``. Fields left out do not constrain."""

    name: str = Field(..., min_length=1)
    tags: list[str] = Field(..., min_length=1)
    site_kinds: list[SiteKind] | None = None
    jurisdictions: list[str] | None = Field(None, description="Countries or blocs (EU, EEA).")
    certifications: Certifications = Field(default_factory=list, description="All of these are required.")
    may_copy: bool = Field(True, description="Whether the data may leave its home site.")
    description: str = ""

    @field_validator("jurisdictions")
    @classmethod
    def _upper(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [j.upper() for j in value]

    def applies_to(self, tags: list[str] | tuple[str, ...] | frozenset[str]) -> bool:
        return bool(set(self.tags) & set(tags))


class Budget(StrictModel):
    usd: float = Field(..., gt=0.0)


class Catalog(StrictModel):
    """Sites, datasets, policies and budgets. ``path`` is where it was read (None: built in)."""

    sites: dict[str, Site] = Field(..., min_length=1)
    datasets: dict[str, CatalogDataset] = Field(default_factory=dict)
    policies: list[Policy] = Field(default_factory=list)
    budgets: dict[str, Budget] = Field(default_factory=dict, description="Per experiment.")
    include_local: bool = Field(
        True, description="Add this machine as site 'local' (free, no certifications) unless a site is it."
    )
    tracking_uri: str | None = Field(None, description="The MLflow server every site reports to.")
    path: str | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _add_local(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("include_local", True) and isinstance(data.get("sites"), dict):
            sites = data["sites"]
            claimed = any(isinstance(s, Mapping) and s.get("executor") == LOCAL_EXECUTOR for s in sites.values())
            if LOCAL_SITE not in sites and not claimed:
                data = {**data, "sites": {LOCAL_SITE: _local_site(), **sites}}
        return data

    @property
    def here(self) -> str | None:
        """The site this machine is at (``executor: local``), if any."""
        return next((n for n, s in self.sites.items() if s.executor == LOCAL_EXECUTOR), None)

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        sites = sorted(self.sites)
        for name, ds in self.datasets.items():
            if ds.site not in self.sites:
                raise CatalogError(
                    f"datasets.{name}.site",
                    f"{ds.site!r} is not a site of the catalog{did_you_mean(ds.site, sites)}",
                    allowed=sites,
                    got=ds.site,
                    fix="name one of the sites",
                )
        here = [n for n, s in self.sites.items() if s.executor == LOCAL_EXECUTOR]
        if len(here) > 1:
            raise CatalogError(
                "sites",
                "'executor: local' means this machine is at that site, and it is at one site at most",
                allowed="'executor: local' on one site at most",
                got=here,
                fix="keep 'executor: local' on the site this machine is in; give the others their Ray cluster's "
                "address (http://HOST:8265), 'launcher: skypilot', or no executor (planned and priced only)",
            )
        for sname, site in self.sites.items():
            _check_site(sname, site)
            _check_offers(sname, site)
            for other in site.bandwidth_gbps:
                if other != "default" and other not in self.sites:
                    raise CatalogError(
                        f"sites.{sname}.bandwidth_gbps.{other}",
                        f"{other!r} is not a site{did_you_mean(other, sites)}",
                        allowed=[*sites, "default"],
                        got=other,
                        fix="name a site, or 'default'",
                    )
        return self

    def dataset_for(self, source: str) -> tuple[str, CatalogDataset] | None:
        """The catalog entry a ``data.source`` names, by dataset name or by URI."""
        if source in self.datasets:
            return source, self.datasets[source]
        for name, ds in self.datasets.items():
            if ds.uri == source:
                return name, ds
        return None

    def policies_for(self, tags: list[str] | tuple[str, ...]) -> list[Policy]:
        return [p for p in self.policies if p.applies_to(tags)]

    def bandwidth_gbps(self, source: str, target: str) -> float:
        """Bandwidth from ``source`` to ``target``: the source's entry, else the target's, else default."""
        a, b = self.sites[source].bandwidth_gbps, self.sites[target].bandwidth_gbps
        for value in (a.get(target), b.get(source), a.get("default"), b.get("default")):
            if value is not None:
                return value
        return DEFAULT_BANDWIDTH_GBPS


def _check_site(name: str, site: Site) -> None:
    """What the field types cannot say: executor forms, a country (not a bloc), queue waits that apply."""
    ex = site.executor
    if site.spark is not None and (ex != site.spark.master or not _SPARK_MASTER.fullmatch(ex)):
        raise CatalogError(
            f"sites.{name}.executor.spark",
            "a Spark master is spark://HOST:PORT, local[N] or sc://HOST:PORT",
            allowed=["spark://HOST:7077", "local[2]", "local[*]", "sc://HOST:15002"], got=site.spark.master,
            fix="give the master URL `spark-class org.apache.spark.deploy.master.Master` prints (spark://...)",
        )
    if site.spark is not None and site.spark.executors is not None and site.offers != [site.spark.executors.offer(site.kind)]:
        raise CatalogError(
            f"sites.{name}.offers",
            "a Spark site with executors: is priced by them; offers: beside them would price it twice",
            allowed="executor.spark.executors or offers:, not both", got=[o.name for o in site.offers],
            fix=f"remove sites.{name}.offers (the executors are the site's offer, {SPARK_OFFER!r}), or executors:",
        )
    if ex is not None and site.spark is None and ex != LOCAL_EXECUTOR and not ex.startswith(_EXECUTOR_SCHEMES):
        launcher = ex.strip().lower() == "skypilot"
        raise CatalogError(
            f"sites.{name}.executor",
            "an executor is 'local', the address of the site's Ray cluster, or {spark: MASTER}"
            + ("; SkyPilot is a launcher (a cluster launched per job), not an executor" if launcher else ""),
            allowed=["local", "http://HOST:8265", "https://HOST", "ray://HOST:10001", "{spark: spark://HOST:7077}"],
            got=ex,
            fix="write `launcher: skypilot` instead of `executor: skypilot`" if launcher else
            "give the job server's address (ray start --head prints it), or leave executor out",
        )
    if ex is not None and site.launcher is not None:
        raise CatalogError(
            f"sites.{name}", "a site has a standing cluster (executor) or a launcher, not both",
            allowed="executor or launcher", got={"executor": ex, "launcher": site.launcher}, fix="keep one of them",
        )
    if site.jurisdiction in BLOCS:
        raise CatalogError(
            f"sites.{name}.jurisdiction",
            f"{site.jurisdiction!r} is a bloc; a site is in one country (policies may name blocs)",
            allowed=sorted(BLOCS[site.jurisdiction]),
            got=site.jurisdiction,
            fix="give the ISO 3166-1 code of the country the site is in (DE, IE, ...)",
        )
    for i, offer in enumerate(site.offers):
        if offer.queue_wait_hours > 0 and offer.nodes_available is None:
            raise CatalogError(
                f"sites.{name}.offers.{i}.queue_wait_hours",
                "a queue wait applies when too few nodes are free, and without nodes_available all "
                f"{offer.nodes} are taken to be free, so the wait would never count",
                allowed="queue_wait_hours together with nodes_available",
                got=offer.queue_wait_hours,
                fix="add nodes_available (nodes free now), or remove queue_wait_hours",
            )


def _check_offers(name: str, site: Site) -> None:
    """Each offer is priced the way its site is owned (checked here, where the site's path is known)."""
    want, other = ("cloud", "owned") if site.kind == "cloud" else ("owned", "cloud")
    for i, offer in enumerate(site.offers):
        if getattr(offer, want) is None or getattr(offer, other) is not None:
            raise CatalogError(
                f"sites.{name}.offers.{i}",
                f"offers of {site.kind} sites are priced with '{want}:' only",
                allowed=[want],
                got=sorted(k for k in ("cloud", "owned") if getattr(offer, k) is not None),
                fix=f"give it a '{want}:' section"
                + (" (on_demand_hourly_usd)" if want == "cloud" else " (purchase_usd, power_kw, ...)"),
            )
    names = [o.name for o in site.offers]
    if len(set(names)) != len(names):
        raise CatalogError(f"sites.{name}.offers", "offer names repeat", allowed="each offer name once", got=names,
                           fix="give each offer its own name")


#: Used when neither site names the other or a default: a modest internet link.
DEFAULT_BANDWIDTH_GBPS = 1.0


def in_jurisdiction(country: str, allowed: list[str]) -> bool:
    """Whether ``country`` is one of ``allowed``, directly or as a member of a bloc named there."""
    return any(country == a or country in BLOCS.get(a, frozenset()) for a in allowed)


def _local_site() -> Site:
    """This machine: free to use (its cost is already paid), jurisdiction unknown ('ZZ')."""
    return Site(
        kind="on_prem",
        provider="this machine",
        jurisdiction="ZZ",
        executor=LOCAL_EXECUTOR,
        offers=[
            Offer(
                name="this-machine",
                accelerator="this-machine",
                per_node=1,
                owned=OwnedCost(purchase_usd=0.0, power_kw=0.0, usd_per_kwh=0.0),
            )
        ],
    )


def local_catalog() -> Catalog:
    """The catalog when none is given: one site, ``local``."""
    return Catalog(sites={LOCAL_SITE: _local_site()})


def parse_catalog(document: Any, *, path: str | None = None) -> Catalog:
    """Validate a mapping as a catalog; errors carry the path inside the document."""
    if not isinstance(document, Mapping):
        raise CatalogError(
            "", "a catalog must be a mapping with 'sites:'", allowed="a mapping (sites: ...)",
            got=type(document).__name__, fix="start it with 'sites:'"
        )
    try:
        catalog = Catalog.model_validate(dict(document))
    except ValidationError as exc:
        err = spec_error_from(exc, Catalog, CatalogError)
        where = f"{path}: " if path else ""
        raise CatalogError("", where + err.what, fix=err.fix, **_parts(err)) from None
    except CatalogError as exc:
        if path:
            raise CatalogError("", f"{path}: {exc.what}", fix=exc.fix, **_parts(exc)) from None
        raise
    return catalog.model_copy(update={"path": path})


def _parts(err: CatalogError) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if err._has_allowed:
        out["allowed"] = err.allowed
    if err._has_got:
        out["got"] = err.got
    return out


def find_catalog(base_dir: Path | None = None) -> Path | None:
    """The catalog file in effect (see the module's docstring for the order), or None."""
    env = os.environ.get(CATALOG_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise CatalogError(
                "", f"${CATALOG_ENV} names {str(path)!r}, which is not a file", allowed="a gravityml.yaml file",
                got=str(path),
                fix=f"point {CATALOG_ENV} at a gravityml.yaml, or unset it",
            )
        return path
    folders = [base_dir, Path.cwd()]
    home = os.environ.get("GRAVITYML_HOME")
    if home:
        folders.append(Path(home).expanduser())
    for folder in folders:
        if folder is not None and (folder / CATALOG_FILE).is_file():
            return folder / CATALOG_FILE
    return None


def load_catalog(path: str | Path | None = None, *, base_dir: Path | None = None) -> Catalog:
    """The catalog at ``path``, else the one :func:`find_catalog` finds, else :func:`local_catalog`."""
    found = Path(path) if path is not None else find_catalog(base_dir)
    if found is None:
        return local_catalog()
    try:
        document = read_yaml(found, "catalog")
    except CatalogError:
        raise
    except Exception as exc:  # read_yaml raises SpecError; a catalog's problem is a CatalogError
        raise CatalogError(
            "", getattr(exc, "what", str(exc)), allowed=getattr(exc, "allowed", None), got=getattr(exc, "got", None),
            fix=getattr(exc, "fix", None),
        ) from None
    catalog = parse_catalog(document, path=str(found))
    return _with_base(catalog, found.resolve().parent)


def _with_base(catalog: Catalog, base: Path) -> Catalog:
    """Relative dataset URIs are read against the catalog's folder."""
    datasets = {}
    for name, ds in catalog.datasets.items():
        uri = ds.uri
        if "://" not in uri and not uri.startswith("sklearn:") and not Path(uri).is_absolute():
            uri = str(base / uri)
        datasets[name] = ds.model_copy(update={"uri": uri})
    return catalog.model_copy(update={"datasets": datasets})


def dataset_size_gb(ds: CatalogDataset, storage: SiteStorage | None = None) -> float | None:
    """The declared size, else what the file, folder or object store says, else None (unknown).

    An ``s3://`` dataset is asked of its home site's store (``storage``) with pyarrow's S3 filesystem.
    """
    if ds.size_gb is not None:
        return ds.size_gb
    if ds.uri.startswith("sklearn:"):
        return 0.0
    if ds.uri.startswith("s3://"):
        return store_size_gb(ds.uri, storage)
    if "://" in ds.uri and not ds.uri.startswith("file://"):
        return None
    raw = ds.uri.removeprefix("file://")
    return local_size_gb(ds.uri) if Path(raw).expanduser().exists() else None


def store_size_gb(uri: str, storage: SiteStorage | None) -> float | None:
    """Size of an object (or of the objects under a prefix) in an S3-compatible store; None if unreadable."""
    from urllib.parse import urlparse

    from pyarrow import fs

    env = storage.env() if storage is not None else {}
    kwargs: dict[str, Any] = {"connect_timeout": 5, "request_timeout": 10}
    endpoint = env.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs.update(endpoint_override=parsed.netloc or endpoint, scheme=parsed.scheme or "https")
    if "AWS_ACCESS_KEY_ID" in env:
        kwargs.update(access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env.get("AWS_SECRET_ACCESS_KEY", ""))
    kwargs["region"] = env.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    key = uri[len("s3://"):].rstrip("/")
    try:
        s3 = fs.S3FileSystem(**kwargs)
        info = s3.get_file_info(key)
        if info.type == fs.FileType.File:
            return info.size / 1e9
        if info.type == fs.FileType.Directory:
            found = s3.get_file_info(fs.FileSelector(key, recursive=True))
            return sum(i.size or 0 for i in found if i.type == fs.FileType.File) / 1e9
    except (OSError, ValueError):
        return None
    return None


def local_size_gb(source: str, base_dir: Path | None = None) -> float:
    """Size in GB of a local file or folder named by ``source``; 0 for remote or built-in data."""
    raw = source.removeprefix("file://")
    if "://" in raw or raw.startswith("sklearn:"):
        return 0.0
    path = Path(raw).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if path.is_file():
        return path.stat().st_size / 1e9
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e9
    return 0.0
