# Rebuild a round's published tables from its tidy answers export alone, with R's survey package.
#
#   Rscript scripts/reproduce/reproduce.R answers.csv table.csv
#
# answers.csv is the tidy answers export (the responses page's "Tải câu trả lời", or `analysis run --answers`);
# the companion answers.criteria.csv, when beside it, also lists criteria no answer reached. The method is that
# of docs/results.md ("Reproducing the tables"): a sheet x agency rated is a unit; its score on a criterion is the mean of its valid item values; the agency's
# score is the fixed-share composite sum_g a_g M_g of its groups' mean scores (a_g = group_share); the design has
# the quota cells as strata, the respondents as PSUs and each cell's sampling fraction as fpc. The survey-points
# total is linear in the group means: its standard error is that of the total of its influence values.
# Writes one row per agency and indicator (a criterion code, "survey_points" or "satisfaction"): est, se, ci_lo, ci_hi, df.
suppressMessages(library(survey))
options(survey.lonely.psu = "adjust")
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: Rscript reproduce.R answers.csv table.csv")
level <- 0.95
read <- function(path) read.csv(path, fileEncoding = "UTF-8-BOM", stringsAsFactors = FALSE, na.strings = "",
                                check.names = FALSE)
a <- read(args[1])
# the maximum points of every criterion per agency kind: the companion file, or the answers' own column
companion <- sub("\\.csv$", ".criteria.csv", args[1])
maxp <- if (file.exists(companion)) read(companion) else
  unique(a[!is.na(a$max_points), c("agency_kind", "criterion", "max_points")])

# one row per unit (sheet x agency rated), with its score on every criterion and its group's shares
a$unit <- paste(a$response_id, a$agency, sep = "\r")
units <- a[!duplicated(a$unit), c("unit", "response_id", "agency", "agency_kind", "group", "stratum",
                                  "sampling_fraction")]
criteria <- sort(unique(maxp$criterion))
per_unit <- function(rows, x, f) {
  v <- tapply(x[rows], a$unit[rows], f)
  as.numeric(v[units$unit])
}
for (cr in criteria) {
  rows <- a$criterion == cr & !is.na(a$value)
  units[[paste0("m_", cr)]] <- per_unit(rows, a$value, mean)
  units[[paste0("a_", cr)]] <- per_unit(rows, a$group_share, max)
}
sat <- !is.na(a$positive) & a$satisfaction_share > 0
units$pos <- per_unit(sat, a$positive, sum)
units$ans <- per_unit(sat, a$positive, length)
units$a_satisfaction <- per_unit(sat, a$satisfaction_share, max)
units[is.na(units)] <- 0  # a unit without a valid answer on a criterion: score 0 with share 0 (not counted)
for (cr in criteria) units[[paste0("m_", cr)]][units[[paste0("a_", cr)]] == 0] <- NA

des <- svydesign(ids = ~response_id, strata = ~stratum, fpc = ~sampling_fraction, weights = ~1, data = units,
                 nest = TRUE)
tq <- function(df) qt(1 - (1 - level) / 2, df)

composite <- function(sub, formula, shares, FUN, ...) {
  # the groups' estimates, then sum_g a_g theta_g with its design SE (svycontrast); one group: its estimate
  groups <- unique(sub$variables$group[sub$prob < Inf])
  if (length(groups) == 1) {
    est <- FUN(formula, sub, ...)
    return(c(est = as.numeric(coef(est)), se = as.numeric(SE(est)), df = degf(sub)))
  }
  by <- svyby(formula, ~group, sub, FUN, covmat = TRUE, ...)
  share <- tapply(shares, sub$variables$group[sub$prob < Inf], max)[as.character(by$group)]
  con <- svycontrast(by, share)
  c(est = as.numeric(coef(con)), se = as.numeric(SE(con)), df = degf(sub))
}

out <- list()
agencies <- sort(unique(units$agency))
for (t in agencies) {
  kind <- units$agency_kind[units$agency == t][1]
  pts <- maxp[maxp$agency_kind == kind, ]
  # criteria: points = max points x the composite mean score
  u <- numeric(nrow(units))
  used <- rep(FALSE, nrow(units))
  complete <- TRUE
  for (cr in pts$criterion) {
    m <- paste0("m_", cr)
    keep <- units$agency == t & !is.na(units[[m]])
    if (!any(keep)) { complete <- FALSE; next }
    sub <- subset(des, agency == t & !is.na(get(m)))
    r <- composite(sub, as.formula(paste0("~", m)), sub$variables[[paste0("a_", cr)]][sub$prob < Inf], svymean)
    mp <- pts$max_points[pts$criterion == cr]
    out[[length(out) + 1]] <- data.frame(agency = t, indicator = cr, est = mp * r[["est"]], se = mp * r[["se"]],
                                         ci_lo = mp * (r[["est"]] - tq(r[["df"]]) * r[["se"]]),
                                         ci_hi = mp * (r[["est"]] + tq(r[["df"]]) * r[["se"]]), df = r[["df"]])
    # the total's influence value of each unit: max points x a_g (m - M_g) / n_g
    g <- units$group[keep]
    mg <- ave(units[[m]][keep], g)
    ng <- ave(units[[m]][keep], g, FUN = length)
    u[keep] <- u[keep] + mp * units[[paste0("a_", cr)]][keep] * (units[[m]][keep] - mg) / ng
    used <- used | keep
  }
  if (complete) {
    est <- sum(sapply(out[sapply(out, function(x) x$agency == t)], function(x) x$est))
    des_u <- update(des, u = u, used = used)
    sub <- subset(des_u, used)
    se <- as.numeric(SE(svytotal(~u, sub)))
    df <- degf(sub)
    out[[length(out) + 1]] <- data.frame(agency = t, indicator = "survey_points", est = est, se = se,
                                         ci_lo = est - tq(df) * se, ci_hi = est + tq(df) * se, df = df)
  }
  # satisfaction: the composite of the groups' ratios positive / answers on the satisfaction scale
  if (any(units$agency == t & units$ans > 0 & units$a_satisfaction > 0)) {
    sub <- subset(des, agency == t & ans > 0 & a_satisfaction > 0)
    r <- composite(sub, ~pos, sub$variables$a_satisfaction[sub$prob < Inf], svyratio, denominator = ~ans)
    out[[length(out) + 1]] <- data.frame(agency = t, indicator = "satisfaction", est = r[["est"]], se = r[["se"]],
                                         ci_lo = NA, ci_hi = NA, df = r[["df"]])
  }
}
table <- do.call(rbind, out)

# satisfaction intervals: logit (svyciprop's), or, where every answer agrees (p = 0 or 1), Korn-Graubard with
# the effective size n / deff of the agency kind (pooled design effect of its other agencies, at least 1)
s <- table$indicator == "satisfaction"
sat_units <- units[units$ans > 0 & units$a_satisfaction > 0, ]
w <- sat_units$ans * sat_units$a_satisfaction / ave(sat_units$ans, sat_units$agency, sat_units$group, FUN = sum)
y <- sat_units$pos / sat_units$ans
idx <- match(sat_units$agency, table$agency[s])
p_of <- table$est[s][idx]
rss <- tapply(w * (y - p_of)^2, sat_units$agency, sum)
n <- tapply(y, sat_units$agency, length)
ag <- table$agency[s]
v_srs <- as.numeric(rss[ag] * n[ag] / (n[ag] - 1) / n[ag])
p <- table$est[s]
se <- table$se[s]
df <- table$df[s]
edge <- p == 0 | p == 1
kind <- units$agency_kind[match(ag, units$agency)]
pooled <- sapply(kind, function(k) {
  i <- kind == k & !edge & v_srs > 0
  if (any(i)) max(sum(se[i]^2) / sum(v_srs[i]), 1) else 1
})
alpha <- 1 - level
lo <- plogis(qlogis(p) - tq(df) * se / (p * (1 - p)))
hi <- plogis(qlogis(p) + tq(df) * se / (p * (1 - p)))
n_eff <- as.numeric(n[ag]) / pooled * (qt(alpha / 2, as.numeric(n[ag]) - 1) / qt(alpha / 2, df))^2
lo[edge] <- ifelse(p[edge] == 1, qbeta(alpha / 2, n_eff[edge], 1), 0)
hi[edge] <- ifelse(p[edge] == 0, qbeta(1 - alpha / 2, 1, n_eff[edge]), 1)
se[edge] <- NA
table$est[s] <- 100 * p
table$se[s] <- 100 * se
table$ci_lo[s] <- 100 * lo
table$ci_hi[s] <- 100 * hi
write.csv(table, args[2], row.names = FALSE, na = "", fileEncoding = "UTF-8")
