#!/usr/bin/env python3
"""One line per bench/point.py JSON line (stdin): p50/p99, CPU, ns/record,
broadcasts a second."""
import json,sys
for line in sys.stdin:
    try: d=json.loads(line)
    except Exception: print(line.strip()); continue
    if 'error' in d: print('ERR', d['error'][-300:]); continue
    l=d['loadgen']; e=l['echo'] if l.get('native_clients',0)==0 or l['echo']['samples'] else l['native_echo']
    recs=l.get('records_received',0)
    print(f"{d.get('tag','')} n={d['clients']} cpu={d['server_cpu_s']}s rss={d['rss_mb']}MB p50={e['p50_ms']} p99={e['p99_ms']} late99={l['send_lateness']['p99_ms']} conv={l.get('convergence',{}).get('ms')} err={l['error_count']} rec/s={l['records_per_s']:.0f} ns/rec={d['server_cpu_s']*1e9/max(recs,1):.1f} load_cpu={d.get('load_cpu_s')}s load_ns/rec={d.get('load_ns_per_record')} vis={l.get('visible_max')} lgcpu={l.get('loadgen_cpu_seconds')} verdict={l['verdict']} bc/s={d.get('steady_broadcasts_per_s')} cpu_share={d.get('steady_cpu_share')} m={d.get('metrics')}")
